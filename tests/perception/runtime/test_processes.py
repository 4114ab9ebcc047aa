"""Graph process helpers: DDS environment, node command lines, supervised child processes."""

from __future__ import annotations

import sys
from pathlib import Path
from xml.etree import ElementTree

from perception.runtime.processes import ManagedProcess, dds_profile_path, graph_environment, node_command


def test_graph_environment_fills_dds_defaults_without_overriding_the_user():
    env = graph_environment({"ROS_DOMAIN_ID": "7"}, base={"FASTDDS_BUILTIN_TRANSPORTS": "UDPv4", "PATH": "/bin"})
    assert env["FASTDDS_BUILTIN_TRANSPORTS"] == "UDPv4"  # the user's choice wins, and no profile is added to it
    assert "FASTDDS_DEFAULT_PROFILES_FILE" not in env
    assert env["MALLOC_MMAP_THRESHOLD_"] == "67108864" and env["ROS_DOMAIN_ID"] == "7" and env["PATH"] == "/bin"
    mine = graph_environment(base={"FASTDDS_DEFAULT_PROFILES_FILE": "/etc/my_dds.xml"})
    assert mine["FASTDDS_DEFAULT_PROFILES_FILE"] == "/etc/my_dds.xml" and "FASTDDS_BUILTIN_TRANSPORTS" not in mine


def test_graph_environment_uses_the_package_dds_profile():
    env = graph_environment(base={})
    profile = Path(env["FASTDDS_DEFAULT_PROFILES_FILE"])
    assert profile == Path(dds_profile_path()) and profile.is_absolute() and "FASTDDS_BUILTIN_TRANSPORTS" not in env
    root = ElementTree.parse(profile).getroot()
    ns = {"d": "http://www.eprosima.com"}
    shm = [t for t in root.iterfind(".//d:transport_descriptor", ns) if t.findtext("d:type", namespaces=ns) == "SHM"]
    assert len(shm) == 1
    segment, largest = int(shm[0].findtext("d:segment_size", namespaces=ns)), int(
        shm[0].findtext("d:maxMessageSize", namespaces=ns))
    assert largest >= 1920 * 1080 * 3 + 1024 and segment >= 4 * largest  # a 1080p rgb8 image whole, several in flight
    participant = root.find(".//d:participant", ns)
    assert participant.get("is_default_profile") == "true"
    used = [t.text for t in participant.iterfind(".//d:userTransports/d:transport_id", ns)]
    assert shm[0].findtext("d:transport_id", namespaces=ns) in used and len(used) == 2  # and UDPv4 for discovery


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
