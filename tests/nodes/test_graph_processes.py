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
