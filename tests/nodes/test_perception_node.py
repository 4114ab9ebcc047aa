"""perception_node over real DDS in one process: outputs carry the input stamp, every encoding, bad messages."""

from __future__ import annotations

import time

import numpy as np
import pytest
import rclpy.node
from diagnostic_msgs.msg import DiagnosticArray
from rclpy.parameter import Parameter
from sensor_msgs.msg import CompressedImage, Image
from std_msgs.msg import Header
from vision_msgs.msg import Detection2DArray

from dualstream_perception.conversions import image_to_features, rgb_to_compressed, stamp_to_ns
from dualstream_perception.diagnostics import values_of
from dualstream_perception.perception_node import PerceptionNode
from dualstream_perception.qos import image_qos
from perception.io.synthetic import SyntheticScene

pytestmark = pytest.mark.ros

W, H = 320, 240
FRAMES = [f.image for f in SyntheticScene(width=W, height=H, num_frames=6, seed=3)]
TINY = {"encoder.name": "dualstream_tiny", "qos.reliability": "reliable", "qos.depth": 10,
        "diagnostics_period_s": 0.2}


def _perception(ros, **params) -> PerceptionNode:
    overrides = [Parameter(k, value=v) for k, v in {**TINY, **params}.items()]
    return ros.add(PerceptionNode(context=ros.context, parameter_overrides=overrides))


class Probe:
    """A node that publishes images and collects everything the perception node publishes."""

    def __init__(self, ros, namespace: str = "") -> None:
        self.node = ros.add(rclpy.node.Node("probe", context=ros.context, namespace=namespace))
        qos = image_qos("reliable", 10)
        self.image_pub = self.node.create_publisher(Image, "image", qos)
        self.compressed_pub = self.node.create_publisher(CompressedImage, "image/compressed", qos)
        self.detections, self.features, self.pca, self.debug, self.diagnostics = [], [], [], [], []
        self.node.create_subscription(Detection2DArray, "detections", self.detections.append, qos)
        self.node.create_subscription(Image, "features", self.features.append, qos)
        self.node.create_subscription(Image, "features/pca", self.pca.append, qos)
        self.node.create_subscription(Image, "debug/image", self.debug.append, qos)
        self.node.create_subscription(DiagnosticArray, "/diagnostics", self.diagnostics.append, 10)

    def header(self, sec: int) -> Header:
        header = Header(frame_id="cam_optical_frame")
        header.stamp.sec, header.stamp.nanosec = sec, 123
        return header

    def raw(self, pixels: np.ndarray, encoding: str, sec: int, pad: int = 0, bigendian: bool = False) -> Image:
        height, width = pixels.shape[:2]
        rows = np.ascontiguousarray(pixels).reshape(height, -1)
        if pixels.dtype == np.uint16:
            rows = np.ascontiguousarray(pixels.astype(">u2" if bigendian else "<u2")).reshape(height, -1).view(np.uint8)
        if pad:
            rows = np.concatenate([rows, np.zeros((height, pad), np.uint8)], axis=1)
        msg = Image(header=self.header(sec), height=height, width=width, encoding=encoding,
                    is_bigendian=int(bigendian), step=rows.shape[1])
        msg.data = rows.tobytes()
        return msg

    def latest_diagnostics(self) -> dict:
        for array in reversed(self.diagnostics):
            values = values_of(array, "perception")
            if values:
                return values
        return {}


def _encodings(rgb: np.ndarray) -> dict[str, np.ndarray]:
    alpha = np.full(rgb.shape[:2] + (1,), 255, np.uint8)
    grey = rgb.mean(axis=2, keepdims=True).astype(np.uint8)
    return {"rgb8": rgb, "bgr8": rgb[:, :, ::-1], "rgba8": np.concatenate([rgb, alpha], 2),
            "bgra8": np.concatenate([rgb[:, :, ::-1], alpha], 2), "mono8": grey,
            "mono16": grey.astype(np.uint16) * 257}


def _wait_subscribed(probe, node, wait_for) -> None:
    assert wait_for(lambda: probe.image_pub.get_subscription_count() > 0 and
                    node.det_pub.get_subscription_count() > 0, timeout=10.0)


def test_every_encoding_gives_outputs_with_the_input_stamp(ros, wait_for):
    node = _perception(ros)
    probe = Probe(ros)
    _wait_subscribed(probe, node, wait_for)
    sent = []
    for sec, (encoding, pixels) in enumerate(_encodings(FRAMES[0]).items(), start=100):
        probe.image_pub.publish(probe.raw(pixels, encoding, sec, pad=4 if sec % 2 else 0, bigendian=sec == 105))
        sent.append(sec)
        assert wait_for(lambda: len(probe.detections) == len(sent), timeout=20.0), encoding
    assert wait_for(lambda: len(probe.features) == len(sent) and len(probe.debug) == len(sent), timeout=5.0)
    assert [m.header.stamp.sec for m in probe.detections] == sent
    assert all(m.header.stamp.nanosec == 123 and m.header.frame_id == "cam_optical_frame" for m in probe.detections)
    assert [m.header.stamp.sec for m in probe.features] == sent
    feats = image_to_features(probe.features[0])
    assert feats.shape[:2] == (H // 8, W // 8) and feats.dtype == np.float32 and np.isfinite(feats).all()
    assert probe.features[0].encoding == f"32FC{feats.shape[2]}"
    assert probe.debug[0].width == W and probe.debug[0].height == H and probe.debug[0].encoding == "rgb8"
    assert probe.pca[0].width == W // 8 and probe.pca[0].encoding == "rgb8"
    assert node.counters()["bad_messages"] == 0 and node.counters()["processed"] == len(sent)


def test_bad_messages_are_counted_and_the_node_keeps_going(ros, wait_for):
    node = _perception(ros)
    probe = Probe(ros)
    _wait_subscribed(probe, node, wait_for)
    good = probe.raw(FRAMES[1], "rgb8", 1)
    unknown = probe.raw(FRAMES[1], "rgb8", 2)
    unknown.encoding = "yuv422_fancy"
    short = probe.raw(FRAMES[1], "rgb8", 3)
    short.data = bytes(short.data)[:1000]
    bad_step = probe.raw(FRAMES[1], "rgb8", 4)
    bad_step.step = 10
    for msg in (unknown, short, bad_step):
        probe.image_pub.publish(msg)
    probe.image_pub.publish(good)
    assert wait_for(lambda: len(probe.detections) == 1, timeout=20.0)
    assert probe.detections[0].header.stamp.sec == 1
    assert wait_for(lambda: node.counters()["bad_messages"] == 3, timeout=5.0)
    assert wait_for(lambda: probe.latest_diagnostics().get("bad_messages") == "3" and
                    probe.latest_diagnostics().get("processed") == "1", timeout=5.0)
    values = probe.latest_diagnostics()
    assert "step 10 is smaller" in values["last_problem"] or "expected step*height" in values["last_problem"] \
        or "unsupported encoding" in values["last_problem"]
    assert probe.diagnostics[-1].status[0].level == b"\x01"  # WARN after bad input


def test_compressed_input_and_a_corrupt_jpeg(ros, wait_for):
    node = _perception(ros, input_transport="compressed")
    probe = Probe(ros)
    assert wait_for(lambda: probe.compressed_pub.get_subscription_count() > 0 and
                    node.det_pub.get_subscription_count() > 0, timeout=10.0)
    jpeg = rgb_to_compressed(FRAMES[2], probe.header(7), "jpeg")
    corrupt = CompressedImage(header=probe.header(8), format="jpeg", data=bytes(jpeg.data)[:500])
    png = rgb_to_compressed(FRAMES[3], probe.header(9), "png")
    for msg in (jpeg, corrupt, png):
        probe.compressed_pub.publish(msg)
        time.sleep(0.3)  # one at a time: the latest-only slot would drop a burst
    assert wait_for(lambda: len(probe.detections) == 2, timeout=20.0)
    assert [m.header.stamp.sec for m in probe.detections] == [7, 9]
    assert node.counters()["bad_messages"] == 1 and "truncated" in node.counters()["last_problem"]


def test_runtime_parameter_changes_are_validated(ros):
    node = _perception(ros)
    refused = node.set_parameters([Parameter("detector.score_threshold", value="high")])[0]
    assert not refused.successful and "detector.score_threshold" in refused.reason and "expected float" in refused.reason
    accepted = node.set_parameters([Parameter("detector.score_threshold", value=0.6)])[0]
    assert accepted.successful and node.params.config.detector.score_threshold == 0.6
    read_only = node.set_parameters([Parameter("encoder.name", value="dualstream_s")])[0]
    assert not read_only.successful


def _boxes(msg: Detection2DArray) -> list[tuple[float, ...]]:
    return [(d.bbox.center.position.x, d.bbox.center.position.y, d.bbox.size_x, d.bbox.size_y) for d in msg.detections]


def test_pipelined_and_serial_nodes_publish_the_same_results(ros, wait_for):
    """runtime.pipelined runs detection and publishing on a second thread: same outputs, same order, as in series
    (each node and its probe in a namespace of their own)."""
    torch = pytest.importorskip("torch")
    runs = {}
    for pipelined in (False, True):
        namespace = "/pipelined" if pipelined else "/serial"
        params = {**TINY, "runtime.pipelined": pipelined, "runtime.publish_pca": False, "runtime.publish_debug": False}
        torch.manual_seed(0)  # the same random tiny encoder in both nodes
        node = ros.add(PerceptionNode(context=ros.context, namespace=namespace,
                                      parameter_overrides=[Parameter(k, value=v) for k, v in params.items()]))
        assert (node.tail is not None) == pipelined
        probe = Probe(ros, namespace)
        _wait_subscribed(probe, node, wait_for)
        for sec, pixels in enumerate(FRAMES, start=1):
            probe.image_pub.publish(probe.raw(pixels, "rgb8", sec))
            assert wait_for(lambda: len(probe.detections) == sec, timeout=20.0)
        assert wait_for(lambda: len(probe.features) == len(FRAMES), timeout=5.0)
        runs[pipelined] = ([m.header.stamp.sec for m in probe.detections], [_boxes(m) for m in probe.detections],
                           [image_to_features(m) for m in probe.features])
        assert node.counters()["processed"] == len(FRAMES) and node.counters()["processing_errors"] == 0
    assert runs[True][0] == runs[False][0] == list(range(1, len(FRAMES) + 1))
    assert runs[True][1] == runs[False][1] and sum(len(b) for b in runs[True][1]) > 0
    for a, b in zip(runs[True][2], runs[False][2]):
        np.testing.assert_array_equal(a, b)


def test_monitor_runs_after_publishing_and_its_failure_costs_no_detections(ros, wait_for):
    node = _perception(ros)
    probe = Probe(ros)
    _wait_subscribed(probe, node, wait_for)
    seen_at_update = []  # frames published (the node's count) when the monitor ran
    update = node.monitor.update

    def monitor_update(image, embedding):
        seen_at_update.append(len(node.timeline))
        if len(seen_at_update) == 2:
            raise RuntimeError("monitor broke")
        return update(image, embedding)

    node.monitor.update = monitor_update
    for sec in (1, 2, 3):
        probe.image_pub.publish(probe.raw(FRAMES[sec], "rgb8", sec))
        assert wait_for(lambda: len(seen_at_update) == sec, timeout=20.0)
    assert wait_for(lambda: len(probe.detections) == 3, timeout=5.0)
    assert [m.header.stamp.sec for m in probe.detections] == [1, 2, 3]  # the failing update cost no frame
    assert seen_at_update == [1, 2, 3]  # each frame was published before its monitor update
    counters = node.counters()
    assert counters["processed"] == 3 and counters["processing_errors"] == 1
    assert "monitor broke" in counters["last_problem"]
    stats = node.timeline.summary()
    assert stats["frames"] == 3 and stats["steps_ms"]["finishing->published"]["p50"] > 0
