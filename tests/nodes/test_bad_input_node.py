"""Bad input through a real perception_node over DDS: every bad message is counted in ``/diagnostics`` and logged, and
a good frame sent afterwards is still processed; bad parameters are refused at start and at run time with a reason.

The same catalogue without ROS (and with files: YAML, checkpoints, bags, videos, streams):
tests/perception/reliability/test_bad_input.py.
"""

from __future__ import annotations

import math
import time

import numpy as np
import pytest
import rclpy.node
from diagnostic_msgs.msg import DiagnosticArray
from rclpy.parameter import Parameter
from sensor_msgs.msg import CameraInfo, CompressedImage, Image
from std_msgs.msg import Header
from vision_msgs.msg import Detection2DArray

from dualstream_perception.conversions import rgb_to_compressed
from dualstream_perception.diagnostics import values_of
from dualstream_perception.perception_node import PerceptionNode
from dualstream_perception.qos import image_qos
from perception.config import ConfigError

pytestmark = pytest.mark.ros

W, H = 64, 48
RGB = np.random.default_rng(2).integers(0, 256, (H, W, 3), dtype=np.uint8)
BASE = {"encoder.name": "dualstream_tiny", "encoder.input_width": W, "encoder.input_height": H,
        "runtime.warmup_frames": 0, "runtime.threads": 1, "qos.reliability": "reliable", "qos.depth": 50,
        "diagnostics_period_s": 0.2, "monitor.enabled": False}


def _image(sec: int, **changes) -> Image:
    header = Header(frame_id="cam")
    header.stamp.sec = sec
    msg = Image(header=header, height=H, width=W, encoding="rgb8", is_bigendian=0, step=W * 3)
    msg.data = RGB.tobytes()
    for key, value in changes.items():
        setattr(msg, key, value)
    return msg


RAW_CASES = {
    "unknown-encoding": {"encoding": "yuv422_fancy"},
    "empty-encoding": {"encoding": ""},
    "float-encoding": {"encoding": "32FC1", "step": W * 4, "data": bytes(W * 4 * H)},
    "mono16-header-mono8-data": {"encoding": "mono16", "step": W, "data": bytes(W * H)},
    "rgb8-header-mono8-data": {"data": bytes(W * H)},
    "zero-width": {"width": 0},
    "zero-height": {"height": 0},
    "huge-width": {"width": 100_000, "step": 300_000},
    "step-smaller-than-row": {"step": W * 3 - 1},
    "step-overflow": {"step": 2**32 - 1},
    "data-short": {"data": RGB.tobytes()[:-7]},
    "data-long": {"data": RGB.tobytes() + bytes(W * 3)},
    "no-data": {"data": b""},
}


def _info(**changes) -> CameraInfo:
    msg = CameraInfo(width=W, height=H, distortion_model="plumb_bob")
    msg.d = [0.1, -0.05, 0.0, 0.0, 0.0]
    msg.k = [60.0, 0.0, 32.0, 0.0, 60.0, 24.0, 0.0, 0.0, 1.0]
    msg.r = [1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0]
    msg.p = [60.0, 0.0, 32.0, 0.0, 0.0, 60.0, 24.0, 0.0, 0.0, 0.0, 1.0, 0.0]
    for key, value in changes.items():
        setattr(msg, key, value)
    return msg


INFO_CASES = {
    "nan-in-k": {"k": [math.nan, 0.0, 32.0, 0.0, 60.0, 24.0, 0.0, 0.0, 1.0]},
    "inf-in-p": {"p": [60.0, 0.0, 32.0, 0.0, 0.0, math.inf, 24.0, 0.0, 0.0, 0.0, 1.0, 0.0]},
    "d-wrong-length": {"d": [0.1, 0.2]},
    "zero-size": {"width": 0, "height": 0},
    "unknown-distortion-model": {"distortion_model": "fisheye_v9"},
}

JPEG = bytes(rgb_to_compressed(RGB, Header(), "jpeg").data)
PNG = bytes(rgb_to_compressed(RGB, Header(), "png").data)
COMPRESSED_CASES = {
    "empty": ("jpeg", b""),
    "unsupported-format": ("h264", JPEG),
    "not-an-image": ("jpeg", b"GIF89a" + bytes(64)),
    "truncated-jpeg": ("jpeg", JPEG[: len(JPEG) // 2]),
    "corrupt-jpeg": ("jpeg", b"\xff\xd8" + bytes(300) + b"\xff\xd9"),
    "truncated-png": ("png", PNG[: len(PNG) // 2]),
    "corrupt-png": ("png", PNG[:40] + bytes(len(PNG) - 40)),
}


class Probe:
    def __init__(self, ros) -> None:
        self.node = ros.add(rclpy.node.Node("bad_input_probe", context=ros.context))
        qos = image_qos("reliable", 50)
        self.image = self.node.create_publisher(Image, "image", qos)
        self.compressed = self.node.create_publisher(CompressedImage, "image/compressed", qos)
        self.info = self.node.create_publisher(CameraInfo, "camera_info", qos)
        self.detections: list = []
        self.diagnostics: list = []
        self.node.create_subscription(Detection2DArray, "detections", self.detections.append, qos)
        self.node.create_subscription(DiagnosticArray, "/diagnostics", self.diagnostics.append, 10)

    def latest(self) -> dict:
        for array in reversed(self.diagnostics):
            values = values_of(array, "perception")
            if values:
                return values
        return {}


def _node(ros, **params) -> PerceptionNode:
    return ros.add(PerceptionNode(context=ros.context,
                                  parameter_overrides=[Parameter(k, value=v) for k, v in {**BASE, **params}.items()]))


def _connected(wait_for, *pairs) -> None:
    for pub, node_pub in pairs:
        assert wait_for(lambda: pub.get_subscription_count() > 0, timeout=10.0)
    time.sleep(0.2)


def test_bad_raw_images_and_camera_infos_are_counted_and_a_good_frame_still_goes_through(ros, wait_for):
    node = _node(ros)
    probe = Probe(ros)
    _connected(wait_for, (probe.image, None), (probe.info, None))
    assert wait_for(lambda: probe.node.count_subscribers("detections") > 0, timeout=10.0)
    for sec, changes in enumerate(RAW_CASES.values(), start=1):
        probe.image.publish(_image(sec, **changes))
    for changes in INFO_CASES.values():
        probe.info.publish(_info(**changes))
    probe.info.publish(_info(k=[0.0] * 9))  # an uncalibrated camera: not a bad message
    expected = len(RAW_CASES) + len(INFO_CASES)
    assert wait_for(lambda: node.counters()["bad_messages"] == expected, timeout=10.0), node.bad
    assert node.bad["image"] == len(RAW_CASES) and node.bad["camera_info"] == len(INFO_CASES)
    probe.image.publish(_image(100))
    assert wait_for(lambda: len(probe.detections) == 1, timeout=20.0)
    assert probe.detections[0].header.stamp.sec == 100
    assert wait_for(lambda: probe.latest().get("bad_messages") == str(expected)
                    and probe.latest().get("processed") == "1", timeout=5.0)
    values = probe.latest()
    assert values["received"] == str(len(RAW_CASES) + 1) and values["processing_errors"] == "0"
    assert probe.diagnostics[-1].status[0].level == b"\x01"  # WARN: bad input was seen


def test_bad_compressed_images_are_counted_and_a_good_jpeg_still_goes_through(ros, wait_for):
    node = _node(ros, input_transport="compressed")
    probe = Probe(ros)
    _connected(wait_for, (probe.compressed, None))
    assert wait_for(lambda: probe.node.count_subscribers("detections") > 0, timeout=10.0)
    for sec, (fmt, data) in enumerate(COMPRESSED_CASES.values(), start=1):
        header = Header(frame_id="cam")
        header.stamp.sec = sec
        probe.compressed.publish(CompressedImage(header=header, format=fmt, data=data))
    assert wait_for(lambda: node.counters()["bad_messages"] == len(COMPRESSED_CASES), timeout=10.0), node.bad
    good = rgb_to_compressed(RGB, Header(frame_id="cam"), "jpeg")
    good.header.stamp.sec = 100
    probe.compressed.publish(good)
    assert wait_for(lambda: len(probe.detections) == 1, timeout=20.0)
    assert probe.detections[0].header.stamp.sec == 100
    assert wait_for(lambda: probe.latest().get("bad_messages") == str(len(COMPRESSED_CASES)), timeout=5.0)


RUNTIME_PARAMETERS = [
    ("detector.score_threshold", "high", "expected float, got str"),
    ("detector.nms_iou", 1.5, r"expected a value in [0, 1], got 1.5"),
    ("detector.score_threshold", math.nan, "expected a finite number"),
    ("detector.max_detections", 0, "expected >= 1, got 0"),
    ("detector.max_detections", 2.5, "expected int, got float"),
    ("runtime.publish_debug", "yes", "expected bool, got str"),
    ("detector.method", "oracle", "unknown detector 'oracle'"),
    ("adaptation.compute_share", 0.0, "adaptation.compute_share: invalid value"),
]


def test_bad_runtime_parameters_are_refused_with_a_reason_and_the_node_keeps_serving(ros, wait_for):
    node = _node(ros)
    probe = Probe(ros)
    _connected(wait_for, (probe.image, None))
    before = node.params.config
    for name, value, reason in RUNTIME_PARAMETERS:
        result = node.set_parameters([Parameter(name, value=value)])[0]
        assert not result.successful, (name, value)
        assert name in result.reason and reason in result.reason, result.reason
    read_only = node.set_parameters([Parameter("encoder.name", value="dualstream_s")])[0]
    assert not read_only.successful and "read-only" in read_only.reason
    assert node.params.config == before
    probe.image.publish(_image(7))
    assert wait_for(lambda: len(probe.detections) == 1, timeout=20.0)
    ok = node.set_parameters([Parameter("detector.nms_iou", value=0.4)])[0]
    assert ok.successful and node.params.config.detector.nms_iou == 0.4


@pytest.mark.parametrize("name,value,reason", [
    ("encoder.global_every", 0, "encoder.global_every: expected an integer >= 1, got 0"),
    ("encoder.global_scale", -1.0, "encoder.global_scale: expected a scale in (0, 4]"),
    ("detector.nms_iou", "x", "detector.nms_iou: expected float, got str"),
    ("runtime.threads", -2, "runtime.threads: expected >= 0"),
    ("encoder.name", "dualstream_xxl", "dualstream_xxl"),
])
def test_bad_parameters_at_start_are_a_clear_error(ros, name, value, reason):
    with pytest.raises((ConfigError, ValueError), match=reason.replace("(", r"\(").replace("]", r"\]")):
        PerceptionNode(context=ros.context,
                       parameter_overrides=[Parameter(k, value=v) for k, v in {**BASE, name: value}.items()])
