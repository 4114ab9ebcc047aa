"""LaunchSupervisor and `dualstream launch` on plain programs (no ROS): respawn with backoff, retries, prefixed
output, shutdown escalation, SIGINT to the command."""

from __future__ import annotations

import io
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

from perception.launch import LaunchSupervisor, ProcessSpec

PY = sys.executable


def spec(label: str, code: str, **kw) -> ProcessSpec:
    return ProcessSpec(label=label, argv=[PY, "-c", code], env=dict(os.environ), **kw)


def test_output_is_prefixed_and_logged(tmp_path):
    echo = io.StringIO()
    sup = LaunchSupervisor([spec("front/talker", "print('hello'); print('bye')")], log_dir=tmp_path, echo=echo)
    assert sup.run(install_signal_handlers=False) == 0
    assert "[front/talker] hello\n[front/talker] bye\n" in echo.getvalue()
    assert (tmp_path / "front.talker.log").read_text() == "hello\nbye\n"


def test_respawn_backs_off_and_stops_after_max_retries():
    echo = io.StringIO()
    crash = spec("crasher", "import sys; sys.exit(3)", respawn=True, respawn_delay=0.1, respawn_max_retries=3)
    sup = LaunchSupervisor([crash], echo=echo, min_delay_s=0.1, stable_after_s=5.0)
    started = time.monotonic()
    assert sup.run(install_signal_handlers=False) == 1  # the last exit code was not 0
    elapsed = time.monotonic() - started
    rec = sup.records[0]
    assert rec.starts == 4 and rec.exit_codes == [3, 3, 3, 3]
    assert rec.delay_s == 0.4  # 0.1, 0.2, 0.4: doubled after each quick exit
    assert elapsed >= 0.7
    assert "respawning in 0.1 s" in echo.getvalue() and "respawning in 0.4 s" in echo.getvalue()


def test_stable_run_resets_the_backoff():
    sup = LaunchSupervisor([spec("p", "pass", respawn=True, respawn_delay=0.1)], echo=None, min_delay_s=0.1,
                           stable_after_s=0.0)
    rec = sup.records[0]
    sup._start(rec)
    for _ in range(3):
        rec.process.wait(5.0)
        sup._on_exit(rec, 0, time.monotonic())
        assert rec.delay_s == 0.1
        sup._start(rec)
    sup.shutdown()


def test_shutdown_escalates_to_sigterm_for_a_process_ignoring_sigint():
    stubborn = spec("stubborn", "import signal, time; signal.signal(signal.SIGINT, signal.SIG_IGN); "
                    "print('ready', flush=True); time.sleep(60)")
    # the default SIGINT handler installed explicitly: a test run started in the background by a non-interactive
    # shell (nohup ... &) hands its children SIGINT ignored, and Python then never raises KeyboardInterrupt
    polite = spec("polite", "import signal, time\nsignal.signal(signal.SIGINT, signal.default_int_handler)\n"
                            "try:\n    print('ready', flush=True)\n    time.sleep(60)\n"
                            "except KeyboardInterrupt:\n    print('clean')")
    echo = io.StringIO()
    sup = LaunchSupervisor([stubborn, polite], echo=echo, stop_timeout_s=0.5)
    stopped: list[float] = []

    def stop_when_both_ready() -> None:  # a fixed delay raced the interpreters' start on a loaded machine
        deadline = time.monotonic() + 30.0
        while time.monotonic() < deadline and not all(f"[{n}] ready" in echo.getvalue() for n in ("stubborn", "polite")):
            time.sleep(0.05)
        stopped.append(time.monotonic())
        sup.stop()

    threading.Thread(target=stop_when_both_ready, daemon=True).start()
    sup.run(install_signal_handlers=False)
    assert stopped and time.monotonic() - stopped[0] < 3.0
    assert sup.records[0].process.poll() == -signal.SIGTERM
    assert sup.records[1].process.poll() == 0 and "[polite] clean" in echo.getvalue()
    assert "stubborn still running: SIGTERM" in echo.getvalue()


def test_on_exit_shutdown_ends_the_launch():
    sup = LaunchSupervisor([spec("main", "pass", shutdown_on_exit=True), spec("other", "import time; time.sleep(60)")],
                           echo=None)
    started = time.monotonic()
    assert sup.run(install_signal_handlers=False) == 0
    assert time.monotonic() - started < 5.0 and sup.records[1].process.poll() is not None


def test_dualstream_launch_stops_everything_on_sigint(tmp_path):
    launch = tmp_path / "sleepers.launch.yaml"
    launch.write_text(textwrap.dedent(f"""
        launch:
        - arg: {{name: n, default: "60"}}
        - executable: {{cmd: "{PY} -c 'import time; print(1, flush=True); time.sleep($(var n))'", name: a}}
        - executable: {{cmd: "{PY} -c 'import time; print(2, flush=True); time.sleep($(var n))'", name: b,
                        respawn: "true"}}
    """))
    proc = subprocess.Popen([PY, "-m", "perception.cli", "launch", str(launch), "n:=30", "--log-dir",
                             str(tmp_path / "logs")], stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and len(list((tmp_path / "logs").glob("*.log"))) < 2:
        time.sleep(0.1)
    time.sleep(0.5)
    proc.send_signal(signal.SIGINT)
    started = time.monotonic()
    code = proc.wait(timeout=10)
    assert time.monotonic() - started < 5.0 and code == 0
    err = proc.stderr.read()
    assert "[a] 1" in err and "[b] 2" in err and "all stopped" in err
    assert (tmp_path / "logs" / "a.log").read_text().startswith("1\n")  # then its KeyboardInterrupt


def test_dualstream_launch_show_and_errors(tmp_path):
    repo = Path(__file__).resolve().parents[3]
    shown = subprocess.run([PY, "-m", "perception.cli", "launch", str(repo / "launch" / "perception.launch.yaml"),
                            "--show", "encoder:=dualstream_tiny"], capture_output=True, text=True, timeout=60)
    assert shown.returncode == 0, shown.stderr
    assert "camera/perception_node [respawn, delay 1 s]" in shown.stdout and "encoder.name:=dualstream_tiny" in \
        shown.stdout
    bad = subprocess.run([PY, "-m", "perception.cli", "launch", str(repo / "launch" / "perception.launch.yaml"),
                          "nmespace:=x"], capture_output=True, text=True, timeout=60)
    assert bad.returncode == 2 and "unknown launch argument(s) nmespace" in bad.stderr
