"""perception_node with online adaptation and the monitor, over real rclpy: the adapter updates while frames are
served, ``~/adaptation/reset`` and ``~/adaptation/snapshot`` work (and refuse when adaptation is off), live and
read-only parameters, diagnostics carry the adaptation state and the monitor's levels."""

from __future__ import annotations

import json

import numpy as np
import pytest
import rclpy.node
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus
from rclpy.parameter import Parameter
from sensor_msgs.msg import Image
from std_msgs.msg import Header
from std_srvs.srv import Trigger

from dualstream_perception.diagnostics import values_of
from dualstream_perception.perception_node import PerceptionNode
from dualstream_perception.qos import image_qos
from perception.io.synthetic import SyntheticScene

pytestmark = pytest.mark.ros

W, H = 160, 120
FRAMES = [f.image[::2, ::2].copy() for f in SyntheticScene(width=2 * W, height=2 * H, num_frames=12, seed=5)]
BASE = {"encoder.name": "dualstream_tiny", "encoder.input_width": W, "encoder.input_height": H,
        "runtime.threads": 1, "runtime.warmup_frames": 0, "qos.reliability": "reliable", "qos.depth": 10,
        "diagnostics_period_s": 0.2, "monitor.reference_frames": 4}
ADAPT = {"adaptation.enabled": True, "adaptation.buffer_size": 8, "adaptation.min_frames": 4,
         "adaptation.train_width": 64, "adaptation.train_height": 48, "adaptation.max_updates_per_s": 20.0,
         "adaptation.compute_share": 1.0, "adaptation.walk_grid": 4,
         # a noise bar every synthetic frame is above: the smoothing learns, so updates report a non-zero loss (the
         # default bar, 8 grey levels, leaves the textures of some synthetic frames idle and others not)
         "adaptation.exposure_noise_max": 1.0}


class Client:
    def __init__(self, ros, wait_for) -> None:
        self.node = ros.add(rclpy.node.Node("adapt_probe", context=ros.context))
        self.wait_for = wait_for
        qos = image_qos("reliable", 10)
        self.pub = self.node.create_publisher(Image, "image", qos)
        self.diagnostics: list[DiagnosticArray] = []
        self.node.create_subscription(DiagnosticArray, "/diagnostics", self.diagnostics.append, 10)

    def send(self, pixels: np.ndarray, sec: int) -> None:
        header = Header(frame_id="cam")
        header.stamp.sec = sec
        msg = Image(header=header, height=pixels.shape[0], width=pixels.shape[1], encoding="rgb8",
                    step=pixels.shape[1] * 3)
        msg.data = np.ascontiguousarray(pixels).tobytes()
        self.pub.publish(msg)

    def call(self, name: str) -> Trigger.Response:
        client = self.node.create_client(Trigger, f"/perception_node/adaptation/{name}")
        assert client.wait_for_service(timeout_sec=10.0), name
        future = client.call_async(Trigger.Request())
        assert self.wait_for(future.done, timeout=30.0), name
        return future.result()

    def latest(self) -> tuple[int | None, dict]:
        for array in reversed(self.diagnostics):
            values = values_of(array, "perception")
            if values:
                return array.status[0].level, values
        return None, {}


def _node(ros, params: dict) -> PerceptionNode:
    overrides = [Parameter(k, value=v) for k, v in {**BASE, **params}.items()]
    return ros.add(PerceptionNode(context=ros.context, parameter_overrides=overrides))


def test_adaptation_runs_services_work_and_diagnostics_report_it(ros, wait_for, tmp_path):
    node = _node(ros, {**ADAPT, "adaptation.state_dir": str(tmp_path)})
    client = Client(ros, wait_for)
    assert wait_for(lambda: client.pub.get_subscription_count() > 0, timeout=10.0)
    for i, frame in enumerate(FRAMES):
        client.send(frame, i)
        assert wait_for(lambda: node.processing.count >= i + 1, timeout=20.0), i
    assert node.adapter is not None and node.adapter.buffer.pushed == len(FRAMES)
    assert wait_for(lambda: node.adapter.updates >= 2, timeout=30.0)
    assert wait_for(lambda: client.latest()[1].get("adaptation_updates", "0") not in ("0", ""), timeout=10.0)
    level, values = client.latest()
    assert values["adaptation_status"] == "adapting" and values["adaptation_rollbacks"] == "0"
    assert values["frame_calibration"] == "n/a"  # the discovery detector has no frame calibration
    assert int(values["gc_collections"]) >= 0 and float(values["gc_max_pause_ms"]) >= 0.0  # the collector's pauses
    assert float(values["adaptation_loss"]) > 0 and float(values["adaptation_drift"]) >= 0
    assert values["luminance_level"] == "OK" and values["contrast_level"] == "OK"
    assert values["ood_level"] in ("OK", "WARN", "ERROR") and values["monitor_level"] in ("OK", "WARN", "ERROR")

    response = client.call("snapshot")
    assert response.success and "saved to" in response.message
    manifest = json.loads((tmp_path / "adapted.json").read_text())
    assert manifest["updates"] >= 2 and manifest["names"] == node.adapter.names

    response = client.call("reset")
    assert response.success and "reset to the source weights" in response.message
    assert node.adapter.guard.status == "adapting" and node.adapter.updates <= 1   # the worker may have run again

    result = node.set_parameters([Parameter("adaptation.lr", value=0.005)])[0]
    assert result.successful and node.adapter.optimizer.param_groups[0]["lr"] == 0.005
    result = node.set_parameters([Parameter("adaptation.buffer_size", value=64)])[0]
    assert not result.successful


def test_without_adaptation_services_refuse_and_a_dark_stream_is_an_error(ros, wait_for):
    node = _node(ros, {})
    client = Client(ros, wait_for)
    assert wait_for(lambda: client.pub.get_subscription_count() > 0, timeout=10.0)
    response = client.call("reset")
    assert not response.success and "disabled" in response.message
    assert not client.call("snapshot").success
    dark = (FRAMES[0] * 0.05).astype(np.uint8)
    client.send(dark, 1)
    assert wait_for(lambda: node.processing.count >= 1, timeout=20.0)
    assert wait_for(lambda: client.latest()[1].get("luminance_level") == "ERROR", timeout=10.0)
    level, values = client.latest()
    assert level == DiagnosticStatus.ERROR and values["adaptation_status"] == "disabled"
    assert float(values["luminance"]) < 0.05
