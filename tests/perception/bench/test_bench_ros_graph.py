"""The ros_graph part of dualstream bench: camera_node -> perception_node -> recorder_node as real processes."""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path

import pytest

from perception.bench.ros_graph import measure_ros_graph

pytestmark = pytest.mark.skipif(importlib.util.find_spec("rclpy") is None
                                or importlib.util.find_spec("vision_msgs") is None,
                                reason="rclpy and vision_msgs are needed to run the graph")


def test_graph_accounts_for_every_published_frame(tmp_path: Path):
    domain = 1 + (os.getpid() * 11) % 99
    result = measure_ros_graph(
        "synthetic", tmp_path, rate_hz=15.0, max_frames=30,
        params={"encoder.name": "dualstream_tiny", "encoder.checkpoint": "", "runtime.threads": 1,
                "runtime.publish_pca": False, "runtime.publish_debug": False},
        env={"ROS_DOMAIN_ID": str(domain)}, startup_delay_s=1.0, drain_s=2.0, timeout_s=120.0)
    assert result["published"] == 30
    assert result["delivered"] + result["drops"] == result["published"]
    assert 0 < result["delivered"] <= result["processed"] <= result["received"] <= 30
    assert result["drop_rate"] == pytest.approx(result["drops"] / 30, abs=1e-4)
    assert result["fps"] > 0
    lat = result["latency_ms"]
    assert 0 < lat["p50"] <= lat["p99"] < 10_000  # input stamp -> detections received, in ms
    for name in ("camera", "perception", "recorder"):
        assert (tmp_path / f"{name}.log").exists()
    # where the latency went: every delivered frame has the node's chain of marks joined with its receipt
    stages = result["stages"]
    assert stages["frames"] == result["delivered"]
    steps = stages["steps_ms"]
    assert list(steps) == ["stamp->received", "received->taken", "taken->encoded", "encoded->finishing",
                           "finishing->published", "published->delivered"]
    assert all(step["p50"] >= 0 for step in steps.values())
    assert sum(step["mean"] for step in steps.values()) == pytest.approx(stages["total_ms"]["mean"], abs=0.05)
    assert stages["total_ms"]["p50"] == pytest.approx(lat["p50"], rel=0.02)  # the recorder's own latency, same frames
    assert steps["taken->encoded"]["p50"] > 0 and steps["finishing->published"]["p50"] > 0
