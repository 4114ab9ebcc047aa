"""`dualstream launch` on the shipped multi-camera YAML launch file: three camera_node processes and one
multi_perception_node over DDS; detections on every camera namespace, respawn after a kill -9, SIGINT stops all."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import rclpy.node
from vision_msgs.msg import Detection2DArray

from dualstream_perception.qos import image_qos
from perception.runtime.processes import graph_environment

pytestmark = pytest.mark.ros

REPO = Path(__file__).resolve().parents[2]
CAMERAS = ("front", "left", "right")


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0]
    except FileNotFoundError:
        return False
    return state != "Z"


class LaunchProcess:
    """`dualstream launch ...` in a child process, its output lines collected."""

    def __init__(self, args: list[str], env: dict) -> None:
        self.proc = subprocess.Popen([sys.executable, "-m", "perception.cli", "launch", *args], env=env,
                                     stdout=subprocess.PIPE,
                                     stderr=subprocess.STDOUT, text=True, start_new_session=True)
        self.lines: list[str] = []
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        for line in self.proc.stdout:
            self.lines.append(line.rstrip("\n"))

    def pids(self, label: str) -> list[int]:
        return [int(m.group(1)) for line in list(self.lines)
                if (m := re.fullmatch(rf"\[launch\] started {re.escape(label)} \(pid (\d+)\)", line))]

    def tail(self) -> str:
        return "\n".join(self.lines[-40:])


def test_multi_camera_launch_file_respawn_and_sigint(ros, wait_for):
    env = graph_environment(ros.env())
    launch = LaunchProcess([str(REPO / "launch" / "multi_camera.launch.yaml"), "encoder:=dualstream_tiny",
                            "rate_hz:=4", "device:=cpu"], env)
    try:
        probe = ros.add(rclpy.node.Node("launch_probe", context=ros.context))
        got = {cam: [] for cam in CAMERAS}
        for cam in CAMERAS:
            probe.create_subscription(Detection2DArray, f"/{cam}/detections", got[cam].append, image_qos())
        assert wait_for(lambda: all(len(got[c]) >= 2 for c in CAMERAS), timeout=90.0), launch.tail()
        for cam in CAMERAS:  # stamps of one camera increase; each camera's frame id is its own camera's
            stamps = [m.header.stamp.sec * 10**9 + m.header.stamp.nanosec for m in got[cam]]
            assert stamps == sorted(stamps)
        children = [pid for label in ("front/camera_node", "left/camera_node", "right/camera_node")
                    for pid in launch.pids(label)]
        assert len(children) == 3
        (first,) = launch.pids("multi_perception_node")

        os.kill(first, signal.SIGKILL)
        killed_at = {cam: len(got[cam]) for cam in CAMERAS}
        assert wait_for(lambda: len(launch.pids("multi_perception_node")) == 2, timeout=30.0), launch.tail()
        assert any("multi_perception_node exited with code -9" in line and "respawning in 1.0 s" in line
                   for line in launch.lines)
        second = launch.pids("multi_perception_node")[1]
        assert second != first and not _alive(first)
        assert wait_for(lambda: all(len(got[c]) >= killed_at[c] + 2 for c in CAMERAS), timeout=90.0), launch.tail()

        launch.proc.send_signal(signal.SIGINT)
        started = time.monotonic()
        code = launch.proc.wait(timeout=15.0)
        elapsed = time.monotonic() - started
        assert elapsed < 5.0 and code == 0, launch.tail()
        assert not any(_alive(pid) for pid in [*children, second])
        assert any(line.startswith("[front/camera_node] ") for line in launch.lines)  # prefixed output
    finally:
        if launch.proc.poll() is None:  # a failed assertion: let the supervisor stop its children first
            launch.proc.send_signal(signal.SIGINT)
            try:
                launch.proc.wait(timeout=10.0)
            except subprocess.TimeoutExpired:
                os.killpg(launch.proc.pid, signal.SIGKILL)
