"""multi_perception_node over real DDS: three camera namespaces, one model, per-camera outputs and stamps."""

from __future__ import annotations

import gc

import pytest
import rclpy.node
from diagnostic_msgs.msg import DiagnosticArray
from rclpy.parameter import Parameter
from sensor_msgs.msg import Image
from std_msgs.msg import Header
from vision_msgs.msg import Detection2DArray

from dualstream_perception.conversions import rgb_to_image
from dualstream_perception.diagnostics import values_of
from dualstream_perception.multi_perception_node import MultiPerceptionNode
from dualstream_perception.qos import image_qos
from perception.config import ConfigError
from perception.io.synthetic import SyntheticScene
from perception.models.encoder import DualStreamEncoder

pytestmark = pytest.mark.ros

CAMERAS = ["front", "left", "right"]
BASE_SEC = {"front": 100, "left": 200, "right": 300}
PARAMS = {"cameras": CAMERAS, "encoder.name": "dualstream_tiny", "qos.reliability": "reliable", "qos.depth": 10,
          "runtime.publish_pca": False, "runtime.publish_debug": False, "diagnostics_period_s": 0.2}


def _node(ros, **params) -> MultiPerceptionNode:
    overrides = [Parameter(k, value=v) for k, v in {**PARAMS, **params}.items()]
    return ros.add(MultiPerceptionNode(context=ros.context, parameter_overrides=overrides))


def _encoders() -> int:
    gc.collect()
    return sum(isinstance(o, DualStreamEncoder) for o in gc.get_objects())


def test_three_cameras_one_model_outputs_apart(ros, wait_for, one_torch_thread):
    before = _encoders()
    node = _node(ros)
    assert _encoders() == before + 1  # one set of weights for three cameras
    probe = ros.add(rclpy.node.Node("probe", context=ros.context))
    qos = image_qos("reliable", 10)
    pubs = {cam: probe.create_publisher(Image, f"{cam}/image", qos) for cam in CAMERAS}
    got: dict[str, list] = {cam: [] for cam in CAMERAS}
    for cam in CAMERAS:
        probe.create_subscription(Detection2DArray, f"{cam}/detections", got[cam].append, qos)
    features: list = []
    probe.create_subscription(Image, "left/features", features.append, qos)
    diagnostics: list = []
    probe.create_subscription(DiagnosticArray, "/diagnostics", diagnostics.append, 10)
    assert wait_for(lambda: all(p.get_subscription_count() > 0 for p in pubs.values()), timeout=20.0)
    assert wait_for(lambda: all(probe.count_publishers(f"{c}/detections") > 0 for c in CAMERAS), timeout=10.0)
    clips = {cam: list(SyntheticScene(width=320, height=240, num_frames=3, seed=i)) for i, cam in enumerate(CAMERAS)}
    for k in range(3):
        for cam in CAMERAS:
            header = Header(frame_id=f"{cam}_optical_frame")
            header.stamp.sec = BASE_SEC[cam] + k
            pubs[cam].publish(rgb_to_image(clips[cam][k].image, header))
        assert wait_for(lambda: all(len(got[c]) == k + 1 for c in CAMERAS), timeout=30.0), \
            {c: len(v) for c, v in got.items()}
    for cam in CAMERAS:
        assert [m.header.stamp.sec for m in got[cam]] == [BASE_SEC[cam] + k for k in range(3)]
        assert {m.header.frame_id for m in got[cam]} == {f"{cam}_optical_frame"}
        assert node.multi.states[cam].encoder.frame_index == 3  # per-camera streaming state
    assert len({id(node.multi.states[c].detector) for c in CAMERAS}) == 3  # per-camera tracks
    assert wait_for(lambda: len(features) == 3, timeout=5.0)
    assert [f.header.stamp.sec for f in features] == [200, 201, 202]
    counters = node.counters()
    assert {c: v["processed"] for c, v in counters["cameras"].items()} == {c: 3 for c in CAMERAS}
    assert sum(counters["batches"].values()) <= 9 and _encoders() == before + 1
    assert wait_for(lambda: any(values_of(a, "left") for a in diagnostics[-3:]), timeout=5.0)

    # runtime disable: frames are received and counted, not processed; the model stays loaded
    assert node.set_parameters([Parameter("enabled", value=False)])[0].successful
    for cam in CAMERAS:
        pubs[cam].publish(rgb_to_image(clips[cam][0].image, Header(frame_id=cam)))
    assert wait_for(lambda: sum(v["skipped_disabled"] for v in node.counters()["cameras"].values()) >= 1,
                    timeout=10.0)
    assert all(len(got[c]) == 3 for c in CAMERAS)
    assert node.set_parameters([Parameter("enabled", value=True)])[0].successful
    pubs["front"].publish(rgb_to_image(clips["front"][1].image, Header(frame_id="front")))
    assert wait_for(lambda: len(got["front"]) == 4, timeout=20.0)


def test_refuses_what_it_does_not_support(ros):
    with pytest.raises(ConfigError, match="adaptation.enabled and rectify are not supported"):
        _node(ros, **{"adaptation.enabled": True})
    with pytest.raises(ConfigError, match="expected distinct camera namespaces"):
        _node(ros, cameras=["a", "a"])


def test_the_batched_worker_keeps_all_cores(ros):
    """runtime.pipelined is perception_node's; the multi-camera node runs each batch whole, so its perceiver takes
    the serial thread count (torch's default), not the pipelined one (one fewer than the cores)."""
    import torch

    from perception.runtime.device import LIBRARY_THREADS

    before = torch.get_num_threads()
    torch.set_num_threads(LIBRARY_THREADS)
    try:
        node = _node(ros)
        assert node.params.config.runtime.pipelined  # the shared default, read but not used here
        assert node.multi.perceiver.threads == LIBRARY_THREADS == torch.get_num_threads()
    finally:
        torch.set_num_threads(before)
