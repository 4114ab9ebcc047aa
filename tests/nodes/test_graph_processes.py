"""Two processes over DDS: perception_node in a child process, images from this one; and the demo graph."""

from __future__ import annotations

import json
import subprocess
import sys
import time

import numpy as np
import pytest
import rclpy.node
from sensor_msgs.msg import Image
from std_msgs.msg import Header
from vision_msgs.msg import Detection2DArray

from dualstream_perception.conversions import rgb_to_image
from dualstream_perception.qos import image_qos
from perception.io.synthetic import SyntheticScene
from perception.runtime.processes import ManagedProcess, graph_environment, node_command

pytestmark = pytest.mark.ros


def test_detections_and_features_cross_process_with_the_input_stamp(ros, wait_for, tmp_path):
    child = ManagedProcess("perception", node_command(
        "dualstream_perception.perception_node", "perception_node",
        params={"encoder.name": "dualstream_tiny", "qos.reliability": "reliable", "qos.depth": 5,
                "stats_path": str(tmp_path / "stats.json")}),
        graph_environment(ros.env()), tmp_path / "perception.log", echo=None).start()
    try:
        probe = ros.add(rclpy.node.Node("probe", context=ros.context))
        qos = image_qos("reliable", 5)
        pub = probe.create_publisher(Image, "image", qos)
        detections, features = [], []
        probe.create_subscription(Detection2DArray, "detections", detections.append, qos)
        probe.create_subscription(Image, "features", features.append, qos)
        assert wait_for(lambda: pub.get_subscription_count() > 0, timeout=60.0), "\n".join(child.lines[-20:])
        assert wait_for(lambda: probe.count_publishers("detections") > 0, timeout=10.0)
        time.sleep(0.5)
        frames = [f.image for f in SyntheticScene(width=640, height=480, num_frames=4, seed=1)]
        for sec, image in enumerate(frames, start=50):
            header = Header(frame_id="cam")
            header.stamp.sec = sec
            pub.publish(rgb_to_image(image, header, "bgr8"))
            assert wait_for(lambda: len(detections) == sec - 49, timeout=30.0), "\n".join(child.lines[-20:])
        assert [d.header.stamp.sec for d in detections] == [50, 51, 52, 53]
        assert wait_for(lambda: len(features) == 4, timeout=5.0)
        assert [f.header.stamp.sec for f in features] == [50, 51, 52, 53]
        assert (features[0].width, features[0].height) == (80, 60)
    finally:
        assert child.stop(timeout=10.0) is not None
    stats = json.loads((tmp_path / "stats.json").read_text())
    assert stats["processed"] == 4 and stats["received"] == 4 and stats["bad_messages"] == 0


def test_demo_on_the_synthetic_scene(tmp_path, ros):
    out = tmp_path / "demo"
    result = subprocess.run(
        [sys.executable, "-m", "perception.cli", "demo", "--source", "synthetic", "--max-frames", "30",
         "--rate", "5", "--out", str(out), "--domain-id", str(ros.domain_id), "--quiet",
         "--set", "encoder.name=dualstream_tiny"],
        capture_output=True, text=True, timeout=240, env=graph_environment())
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-4000:]
    summary = json.loads((out / "summary.json").read_text())
    assert summary["frames_published"] == 30
    assert summary["frames_processed"] >= 27  # at least 90 percent
    assert summary["detections_msgs"] >= 25 and summary["features_msgs"] >= 25
    assert summary["latency_ms"]["p50"] is not None and 0 < summary["latency_ms"]["p50"] < 1000
    assert (out / "overlay.mp4").stat().st_size > 0 and summary["overlay_frames"] >= 25
    assert (out / "bag" / "metadata.yaml").is_file()
    assert "frames" in result.stdout and "latency" in result.stdout


def test_large_images_cross_processes_whole_with_best_effort(ros, wait_for, tmp_path):
    """768x576 rgb8 frames (1.3 MB, over Fast DDS's default 512 KB shared-memory segment) from camera_node in a child
    process, sensor-data QoS (best effort) on both sides: with the graph's DDS profile (config/fastdds_shm.xml) they
    travel whole through shared memory and all arrive; with Fast DDS's defaults or LARGE_DATA most were lost here."""
    frames = 45
    child = ManagedProcess("camera", node_command(
        "dualstream_perception.camera_node", "camera_node",
        params={"source.uri": "synthetic", "source.width": 768, "source.height": 576, "source.num_frames": frames,
                "source.rate_hz": 15.0, "qos.reliability": "best_effort", "qos.depth": 1,
                "wait_for_subscribers": 1, "wait_timeout_s": 60.0, "startup_delay_s": 1.0, "exit_at_end": True,
                "stats_path": str(tmp_path / "camera.json")}),
        graph_environment(ros.env()), tmp_path / "camera.log", echo=None)
    probe = ros.add(rclpy.node.Node("probe", context=ros.context))
    sizes, latencies = [], []

    def on_image(msg: Image) -> None:
        latencies.append((time.time_ns() - (msg.header.stamp.sec * 10**9 + msg.header.stamp.nanosec)) / 1e6)
        sizes.append((msg.width, msg.height, len(msg.data)))

    probe.create_subscription(Image, "image_raw", on_image, image_qos("best_effort", 10))
    child.start()
    try:
        assert wait_for(lambda: child.poll() is not None, timeout=90.0), "\n".join(child.lines[-20:])
        assert wait_for(lambda: len(sizes) >= frames, timeout=3.0)
    finally:
        child.stop(timeout=10.0)
    assert json.loads((tmp_path / "camera.json").read_text())["published"] == frames
    assert len(sizes) == frames and set(sizes) == {(768, 576, 768 * 576 * 3)}
    assert np.median(latencies) < 100.0  # publish to this process's callback (about 5 ms on a quiet 2-core machine)
