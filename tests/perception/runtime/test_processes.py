"""Graph process helpers: DDS environment, node command lines, supervised child processes."""

from __future__ import annotations

import sys

from perception.runtime.processes import ManagedProcess, graph_environment, node_command


def test_graph_environment_fills_dds_defaults_without_overriding_the_user():
    env = graph_environment({"ROS_DOMAIN_ID": "7"}, base={"FASTDDS_BUILTIN_TRANSPORTS": "UDPv4", "PATH": "/bin"})
    assert env["FASTDDS_BUILTIN_TRANSPORTS"] == "UDPv4"  # the user's choice wins
    assert env["MALLOC_MMAP_THRESHOLD_"] == "67108864" and env["ROS_DOMAIN_ID"] == "7" and env["PATH"] == "/bin"
    assert graph_environment(base={})["FASTDDS_BUILTIN_TRANSPORTS"] == "LARGE_DATA"


def test_node_command_line():
    cmd = node_command("pkg.node", "name", "/ns", params={"a.b": 1.5, "flag": True, "topics": ["/x", "/y"], "s": ""},
                       remaps={"image": "image_raw"})
    assert cmd[:4] == [sys.executable, "-m", "pkg.node", "--ros-args"]
    text = " ".join(cmd[4:])
    assert "-r __node:=name" in text and "-r __ns:=/ns" in text and "-r image:=image_raw" in text
    assert "-p a.b:=1.5" in text and "-p flag:=true" in text and "-p topics:=[/x,/y]" in text and "-p s:=''" in text


def test_managed_process_prefixes_output_logs_it_and_stops_with_sigint(tmp_path):
    script = ("import signal, sys, time\n"
              "print('ready', flush=True)\n"
              "signal.signal(signal.SIGINT, lambda *a: (print('bye', flush=True), sys.exit(3)))\n"
              "time.sleep(30)\n")
    echo = tmp_path / "echo.txt"
    with echo.open("w") as handle:
        proc = ManagedProcess("child", [sys.executable, "-c", script], log_path=tmp_path / "child.log", echo=handle)
        proc.start()
        for _ in range(200):
            if proc.lines:
                break
            proc.wait(timeout=0.02)
        assert proc.lines == ["ready"]
        assert proc.stop(timeout=5.0) == 3  # the child's own SIGINT handler ran
    assert (tmp_path / "child.log").read_text().splitlines() == ["ready", "bye"]
    assert echo.read_text().splitlines() == ["[child] ready", "[child] bye"]


def test_a_child_that_ignores_sigint_is_terminated(tmp_path):
    script = "import signal, time\nsignal.signal(signal.SIGINT, signal.SIG_IGN)\nprint('x', flush=True)\ntime.sleep(60)\n"
    proc = ManagedProcess("stubborn", [sys.executable, "-c", script], echo=None).start()
    for _ in range(200):
        if proc.lines:
            break
        proc.wait(timeout=0.02)
    assert proc.stop(timeout=0.5) == -15  # SIGTERM after the SIGINT grace period
