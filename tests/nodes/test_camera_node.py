"""camera_node over real DDS: image_raw and camera_info at the set rate, finite sources, use_sim_time stamps."""

from __future__ import annotations

import json
import time

import numpy as np
import pytest
from diagnostic_msgs.msg import DiagnosticStatus
from rclpy.parameter import Parameter
from rosgraph_msgs.msg import Clock
from sensor_msgs.msg import CameraInfo, Image

from dualstream_perception.camera_node import CameraNode
from dualstream_perception.conversions import image_to_rgb, stamp_to_ns
from dualstream_perception.qos import image_qos
from perception.runtime.processes import ManagedProcess, graph_environment, node_command

pytestmark = pytest.mark.ros


def _camera(ros, **params) -> CameraNode:
    overrides = [Parameter(k, value=v) for k, v in {
        "source.uri": "synthetic", "source.width": 320, "source.height": 240, "source.num_frames": 15,
        "wait_for_subscribers": 1, "wait_timeout_s": 10.0, **params}.items()]
    return ros.add(CameraNode(context=ros.context, parameter_overrides=overrides))


def _listener(ros, name: str, reliability: str = "reliable"):
    node = ros.add(rclpy_node(ros, name))
    images, infos = [], []
    qos = image_qos(reliability, 30)
    node.create_subscription(Image, "image_raw", lambda m: images.append((m, time.monotonic())), qos)
    node.create_subscription(CameraInfo, "camera_info", infos.append, qos)
    return node, images, infos


def rclpy_node(ros, name: str):
    import rclpy.node

    return rclpy.node.Node(name, context=ros.context)


def test_publishes_every_frame_at_the_set_rate(ros, wait_for, tmp_path):
    # The camera runs in its own process, as in a deployed graph: the rate is then the node's, not this test
    # process's executor's (in-process, the publishing thread shares the GIL with the executor threads and stalls).
    _, images, infos = _listener(ros, "listener", "best_effort")
    camera = ManagedProcess("camera", node_command("dualstream_perception.camera_node", "camera_node", params={
        "source.uri": "synthetic", "source.width": 320, "source.height": 240, "source.num_frames": 15,
        "source.rate_hz": 20.0, "qos.depth": 30, "wait_for_subscribers": 1, "wait_timeout_s": 30.0,
        "startup_delay_s": 0.5, "exit_at_end": True, "stats_path": str(tmp_path / "camera.json")}),
        graph_environment(ros.env()), echo=None).start()
    try:
        assert camera.wait(timeout=60.0) == 0, "\n".join(camera.lines[-20:])
    finally:
        camera.stop()
    assert wait_for(lambda: len(images) == 15, timeout=3.0), len(images)
    assert json.loads((tmp_path / "camera.json").read_text())["published"] == 15
    first = image_to_rgb(images[0][0])
    assert first.shape == (240, 320, 3) and first.std() > 5  # a textured picture, not a blank
    stamps = [stamp_to_ns(m.header.stamp) for m, _ in images]
    assert all(b > a for a, b in zip(stamps, stamps[1:]))
    diffs = np.diff(stamps) / 1e9  # stamps are taken at publication
    assert 0.045 < float(np.median(diffs)) < 0.056, diffs  # 20 Hz = 50 ms
    assert float(diffs.max()) < 0.15, diffs
    assert wait_for(lambda: len(infos) >= 14, timeout=2.0)
    assert infos[0].width == 320 and infos[0].height == 240
    assert infos[0].header.frame_id == images[0][0].header.frame_id == "camera_optical_frame"


def test_use_sim_time_stamps_follow_the_clock_topic(ros, wait_for):
    clock_node = ros.add(rclpy_node(ros, "clock_source"))
    clock_pub = clock_node.create_publisher(Clock, "/clock", 10)
    _, images, _ = _listener(ros, "listener")
    sim_ns = 1_000_000_000_000  # 1000 s of simulated time

    def tick():
        msg = Clock()
        msg.clock.sec, msg.clock.nanosec = divmod(sim_ns, 1_000_000_000)
        clock_pub.publish(msg)

    clock_node.create_timer(0.01, tick)
    camera = _camera(ros, use_sim_time=True, **{"source.rate_hz": 30.0, "source.num_frames": 5,
                                                "qos.reliability": "reliable", "qos.depth": 30,
                                                "startup_delay_s": 0.5})
    assert wait_for(camera.finished.is_set, timeout=20.0)
    assert wait_for(lambda: len(images) == 5, timeout=3.0)
    stamps = {stamp_to_ns(m.header.stamp) for m, _ in images}
    assert stamps == {sim_ns}, stamps  # the simulated clock stood still, so every stamp is that time


def test_a_missing_file_is_reported_and_the_node_survives(ros, wait_for):
    camera = _camera(ros, **{"source.uri": "/nonexistent/clip.mp4", "wait_for_subscribers": 0})
    assert wait_for(camera.finished.is_set, timeout=5.0)
    assert camera.published == 0


def _diagnostics(ros, name: str):
    from diagnostic_msgs.msg import DiagnosticArray

    node = ros.add(rclpy_node(ros, name))
    seen = []
    node.create_subscription(DiagnosticArray, "/diagnostics",
                             lambda m: seen.extend(s for s in m.status if s.name.endswith(": source")), 10)
    return seen


def test_source_state_is_in_diagnostics(ros, wait_for):
    seen = _diagnostics(ros, "diag_listener")
    _camera(ros, **{"wait_for_subscribers": 0, "diagnostics_period_s": 0.2, "source.rate_hz": 10.0})
    assert wait_for(lambda: any(s.message == "streaming" for s in seen), timeout=10.0)
    assert wait_for(lambda: any(s.message.startswith("source ended after 15 frames") for s in seen), timeout=10.0)
    ok = [s for s in seen if s.message == "streaming"][0]
    assert ok.level == DiagnosticStatus.OK and {kv.key: kv.value for kv in ok.values}["state"] == "streaming"


def test_a_source_that_cannot_open_is_an_error_diagnostic(ros, wait_for):
    seen = _diagnostics(ros, "diag_listener_err")
    camera = _camera(ros, **{"source.uri": "/nonexistent/clip.mp4", "wait_for_subscribers": 0,
                             "diagnostics_period_s": 0.2})
    assert wait_for(lambda: any(s.level == DiagnosticStatus.ERROR for s in seen), timeout=10.0)
    error = [s for s in seen if s.level == DiagnosticStatus.ERROR][0]
    assert "cannot open source '/nonexistent/clip.mp4'" in error.message and camera.state == "failed"
