"""Faults through a real perception_node: NaN out of the model and out-of-memory show in ``/diagnostics`` while the
node keeps serving; a node killed with SIGKILL and restarted resumes its adapted state, with no corrupt files.

The ROS-free fault tests (camera outage, end of file, guard rollback, the out-of-memory ladder):
tests/perception/reliability/test_faults.py.
"""

from __future__ import annotations

import json
import os
import signal
import time

import numpy as np
import pytest
import rclpy.node
import torch
from diagnostic_msgs.msg import DiagnosticArray
from rclpy.parameter import Parameter
from sensor_msgs.msg import Image
from std_msgs.msg import Header
from vision_msgs.msg import Detection2DArray

from dualstream_perception.conversions import rgb_to_image
from dualstream_perception.diagnostics import values_of
from dualstream_perception.perception_node import PerceptionNode
from dualstream_perception.qos import image_qos
from perception.adaptation.persistence import MANIFEST, load_state
from perception.io.synthetic import SyntheticScene
from perception.runtime.processes import ManagedProcess, graph_environment, node_command

pytestmark = pytest.mark.ros

W, H = 160, 120
FRAMES = [f.image[::2, ::2].copy() for f in SyntheticScene(width=2 * W, height=2 * H, num_frames=16, seed=4)]
BASE = {"encoder.name": "dualstream_tiny", "encoder.input_width": W, "encoder.input_height": H,
        "runtime.warmup_frames": 0, "runtime.threads": 1, "qos.reliability": "reliable", "qos.depth": 10,
        "diagnostics_period_s": 0.2, "monitor.enabled": False}
ADAPT = {"adaptation.enabled": True, "adaptation.buffer_size": 8, "adaptation.min_frames": 4,
         "adaptation.train_width": 64, "adaptation.train_height": 48, "adaptation.walk_grid": 4,
         "adaptation.max_updates_per_s": 20.0, "adaptation.compute_share": 1.0, "adaptation.save_every_s": 0.5}


class Probe:
    def __init__(self, ros) -> None:
        self.node = ros.add(rclpy.node.Node("fault_probe", context=ros.context))
        qos = image_qos("reliable", 10)
        self.pub = self.node.create_publisher(Image, "image", qos)
        self.detections: list = []
        self.diagnostics: list = []
        self.node.create_subscription(Detection2DArray, "detections", self.detections.append, qos)
        self.node.create_subscription(DiagnosticArray, "/diagnostics", self.diagnostics.append, 10)

    def send(self, i: int) -> None:
        header = Header(frame_id="cam")
        header.stamp.sec = i
        self.pub.publish(rgb_to_image(FRAMES[i % len(FRAMES)], header))

    def latest(self) -> dict:
        for array in reversed(self.diagnostics):
            values = values_of(array, "perception")
            if values:
                return values
        return {}


def _node(ros, **params) -> PerceptionNode:
    return ros.add(PerceptionNode(context=ros.context,
                                  parameter_overrides=[Parameter(k, value=v) for k, v in {**BASE, **params}.items()]))


def test_nan_out_of_the_model_is_dropped_counted_and_the_node_recovers(ros, wait_for):
    node = _node(ros)
    probe = Probe(ros)
    assert wait_for(lambda: probe.pub.get_subscription_count() > 0, timeout=10.0)
    probe.send(1)
    assert wait_for(lambda: len(probe.detections) == 1, timeout=20.0)
    weight = next(p for n, p in node.perceiver.encoder.named_parameters() if n.endswith("weight"))
    saved = weight.detach().clone()
    with torch.no_grad():
        weight.fill_(float("nan"))
    probe.send(2)
    assert wait_for(lambda: probe.latest().get("non_finite_outputs") == "1", timeout=20.0)
    assert len(probe.detections) == 1  # nothing was published for the NaN frame
    values = probe.latest()
    assert "model output is not finite" in values["last_problem"] and values["processing_errors"] == "0"
    assert probe.diagnostics[-1].status[0].level == b"\x01"
    with torch.no_grad():
        weight.copy_(saved)
    probe.send(3)
    assert wait_for(lambda: len(probe.detections) == 2, timeout=20.0)
    assert probe.detections[-1].header.stamp.sec == 3


def test_out_of_memory_degrades_and_says_so_in_diagnostics(ros, wait_for):
    node = _node(ros)
    probe = Probe(ros)
    real = node.perceiver.encoder.encode

    def encode(x, state, **kwargs):  # a device with room for a quarter of the frame: CUDA raises this type
        if x.shape[-1] * x.shape[-2] > W * H // 3:
            raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 1.00 GiB (simulated)")
        return real(x, state, **kwargs)

    node.perceiver.encoder.encode = encode
    assert wait_for(lambda: probe.pub.get_subscription_count() > 0, timeout=10.0)
    probe.send(1)
    assert wait_for(lambda: len(probe.detections) == 1, timeout=20.0)
    assert wait_for(lambda: "encoder input lowered" in probe.latest().get("degraded", ""), timeout=5.0)
    values = probe.latest()
    assert values["out_of_memory"] == "1" and values["encoder_input"] == f"{W // 2}x{H // 2}"
    assert values["processing_errors"] == "0"


def _wait_manifest(state_dir, wait_for, child, updates: int) -> dict:
    manifest = state_dir / MANIFEST

    def saved() -> bool:
        try:
            return json.loads(manifest.read_text())["updates"] >= updates
        except (OSError, ValueError, KeyError):
            return False

    assert wait_for(saved, timeout=60.0), "\n".join(child.lines[-30:])
    return json.loads(manifest.read_text())


def test_killed_and_restarted_the_node_resumes_its_adapted_state(ros, wait_for, tmp_path):
    state_dir = tmp_path / "adapted"
    params = {**BASE, **ADAPT, "adaptation.state_dir": str(state_dir)}
    env = graph_environment(ros.env())

    def start(run: int) -> ManagedProcess:
        return ManagedProcess(f"perception{run}", node_command("dualstream_perception.perception_node",
                                                               "perception_node", params=params),
                              env, tmp_path / f"perception{run}.log", echo=None).start()

    probe = Probe(ros)
    first = start(1)
    try:
        assert wait_for(lambda: probe.pub.get_subscription_count() > 0, timeout=60.0), "\n".join(first.lines[-20:])
        time.sleep(0.5)
        for i in range(12):
            probe.send(i)
            time.sleep(0.1)
        saved = _wait_manifest(state_dir, wait_for, first, updates=3)
        os.killpg(first.pid, signal.SIGKILL)  # no shutdown handler runs: what is on disk is what a crash leaves
        assert first.wait(timeout=10.0) == -signal.SIGKILL
    finally:
        first.stop(timeout=2.0)
    files = sorted(p.name for p in state_dir.iterdir())
    state = load_state(state_dir, json.loads((state_dir / MANIFEST).read_text())["source_sha256"])  # loads: sound
    at_kill = state.meta["updates"]
    assert at_kill >= saved["updates"] >= 3
    assert MANIFEST in files and sum(f.startswith("weights-") and f.endswith(".safetensors") for f in files) == 1

    probe.diagnostics.clear()
    second = start(2)
    try:
        assert wait_for(lambda: any("resumed adaptation from" in line for line in second.lines), timeout=60.0), \
            "\n".join(second.lines[-20:])
        line = next(line for line in second.lines if "resumed adaptation from" in line)
        assert f"at update {at_kill} " in line
        assert wait_for(lambda: probe.latest().get("adaptation_updates", "") not in ("", "0"), timeout=30.0)
        assert int(probe.latest()["adaptation_updates"]) >= at_kill
    finally:
        assert second.stop(timeout=10.0) == 0, "\n".join(second.lines[-20:])
    leftovers = [p.name for p in state_dir.iterdir() if p.name.endswith(".tmp")]
    assert leftovers == []
    final = load_state(state_dir, state.meta["source_sha256"])
    assert final.meta["updates"] >= at_kill and np.isfinite([v.float().sum().item() for v in final.tensors.values()]).all()
