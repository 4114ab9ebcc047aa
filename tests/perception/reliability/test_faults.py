"""Faults, ROS-free: a camera that disconnects and comes back, the end of a file source, NaN out of the model, and
out-of-memory on the device (simulated on the CPU by raising ``torch.OutOfMemoryError``, the type CUDA raises).

The node-level counterparts (diagnostics, kill -9 and restart): tests/nodes/test_faults_node.py.
"""

from __future__ import annotations

import threading
import time

import cv2
import numpy as np
import pytest
import torch

from perception.adaptation import attach_online_adapter
from perception.adaptation.config import AdaptationConfig
from perception.config import load_config
from perception.io.camera import CameraSource
from perception.io.frame import Frame
from perception.io.video import VideoFileSource
from perception.runtime.perceiver import Perceiver
from perception.runtime.pipeline import Pipeline
from perception.runtime.preprocess import encoder_size
from perception.runtime.resilience import NonFiniteOutput, ResilientPerceiver

W, H = 160, 120
TINY = {"encoder": {"name": "dualstream_tiny", "input_width": W, "input_height": H},
        "runtime": {"warmup_frames": 0, "threads": 1}}
ADAPT = AdaptationConfig(enabled=True, buffer_size=8, min_frames=4, train_width=64, train_height=48, walk_grid=4)


def _frames(n: int, seed: int = 0) -> list[Frame]:
    rng = np.random.default_rng(seed)
    base = rng.integers(0, 256, (H, W, 3), dtype=np.uint8)
    return [Frame(image=np.roll(base, 3 * i, axis=1), stamp_ns=i * 33_000_000, seq=i) for i in range(n)]


@pytest.fixture
def perceiver(one_torch_thread) -> Perceiver:
    torch.manual_seed(0)
    return Perceiver(load_config(TINY))


# -- camera outage -------------------------------------------------------------------------------------------------
def test_a_camera_that_disconnects_comes_back_with_backoff_and_reports_while_down(make_clip):
    clip = str(make_clip(n=6))
    opens: list[float] = []

    def cable():  # plugged in, then unplugged for two reopen attempts, then plugged in again
        opens.append(time.monotonic())
        return cv2.VideoCapture(clip if len(opens) in (1, 4) else clip + ".unplugged")

    source = CameraSource(0, reconnect_attempts=4, backoff_s=0.05, capture_factory=cable)
    seen: list[dict] = []
    stop = threading.Event()

    def watch():  # what a diagnostics timer would publish while the camera is down
        while not stop.is_set():
            seen.append(source.status())
            time.sleep(0.01)

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    got = []
    for frame in source:
        got.append((frame.seq, time.monotonic()))
        if len(got) == 12:
            break
    stop.set()
    watcher.join()
    assert source.status()["state"] == "streaming" and source.status()["down_s"] == 0.0
    source.close()
    assert [s for s, _ in got] == list(range(12)) and source.reconnects == 1
    gaps = np.diff(opens)
    assert len(opens) == 4 and gaps[1] >= 0.09 and gaps[2] >= 0.18  # 0.05, 0.1, 0.2 s: the delay doubles
    outage = got[6][1] - got[5][1]
    assert outage >= 0.05 + 0.1 + 0.2
    down = [s for s in seen if s["state"] == "reconnecting"]
    assert down and max(s["attempt"] for s in down) == 3 and max(s["down_s"] for s in down) >= 0.15
    assert max(s["next_delay_s"] for s in down) == pytest.approx(0.2)
    assert source.status()["state"] == "closed"


# -- end of a file source ------------------------------------------------------------------------------------------
def test_the_end_of_a_file_ends_the_run_cleanly_with_every_frame_accounted(make_clip, perceiver):
    clip = make_clip("clip.avi", n=9, width=W, height=H)
    stats = Pipeline(VideoFileSource(clip), perceiver).run()
    assert stats.stop_reason == "end" and stats.error is None
    assert stats.frames_read == 9 and stats.frames_processed + stats.frames_dropped + stats.frames_failed == 9
    again = list(VideoFileSource(clip))  # a file source can be read again from the start
    assert len(again) == 9 and again[0].seq == 0


# -- NaN or inf out of the model -----------------------------------------------------------------------------------
def test_non_finite_output_is_dropped_counted_and_the_stream_recovers(perceiver):
    resilient = ResilientPerceiver(perceiver)
    frames = _frames(4)
    assert np.isfinite(resilient.process(frames[0]).features).all()
    weight = next(p for n, p in perceiver.encoder.named_parameters() if n.endswith("weight"))
    saved = weight.detach().clone()
    with torch.no_grad():
        weight.fill_(float("inf"))
    for frame in frames[1:3]:
        with pytest.raises(NonFiniteOutput, match=r"frame \d: model output is not finite \(features: \d+ of"):
            resilient.process(frame)
    assert resilient.non_finite == 2 and resilient.values()["non_finite_outputs"] == 2
    assert perceiver.streams == []  # the poisoned streaming state was dropped
    with torch.no_grad():
        weight.copy_(saved)
    assert np.isfinite(resilient.process(frames[3]).features).all()


def test_non_finite_output_informs_the_adaptation_guard_which_rolls_back(perceiver):
    adapter, _ = attach_online_adapter(perceiver, ADAPT, start=False)
    resilient = ResilientPerceiver(perceiver, adapter)
    frames = _frames(4)
    resilient.process(frames[0])
    name = adapter.names[0]  # a bad adapted set reaches the serving model (as a swap would bring it)
    with torch.no_grad():
        adapter.serving[name].fill_(float("nan"))
    with pytest.raises(NonFiniteOutput, match="adaptation guard: rollback"):
        resilient.process(frames[1])
    assert adapter.guard.trips == 1 and adapter.guard.status == "rolled_back"
    assert "non-finite model output" in adapter.guard.last_reasons[0]
    result = resilient.process(frames[2])  # the snapshot is swapped in at the next frame boundary
    assert np.isfinite(result.features).all() and torch.isfinite(adapter.serving[name]).all()
    torch.testing.assert_close(adapter.serving[name], adapter.source[name])


# -- out of memory on the device -----------------------------------------------------------------------------------
def _memory_budget(perceiver: Perceiver, budget_pixels: int, adapter_cost: int) -> list[tuple[int, int]]:
    """Make the encoder raise the exception CUDA raises when the input (plus an attached adapter's share) exceeds
    ``budget_pixels``; returns the list of input sizes it served."""
    real = perceiver.encoder.encode
    served: list[tuple[int, int]] = []

    def encode(x, state, **kwargs):
        need = x.shape[-1] * x.shape[-2] + (adapter_cost if perceiver.adapter is not None else 0)
        if need > budget_pixels:
            raise torch.OutOfMemoryError(f"CUDA out of memory. Tried to allocate {need} units (simulated)")
        served.append((int(x.shape[-1]), int(x.shape[-2])))
        return real(x, state, **kwargs)

    perceiver.encoder.encode = encode
    return served


def test_out_of_memory_degrades_by_skipping_adaptation_then_lowering_resolution(perceiver, caplog):
    adapter, _ = attach_online_adapter(perceiver, ADAPT, start=False)
    notes: list[str] = []
    resilient = ResilientPerceiver(perceiver, adapter, min_side=32, warn=notes.append)
    served = _memory_budget(perceiver, budget_pixels=W * H // 2, adapter_cost=10**6)
    frames = _frames(3)
    result = resilient.process(frames[0])
    lowered = encoder_size(W, H, W // 2, H // 2)  # the half size, rounded to the stride
    assert served == [lowered]
    assert resilient.degradations == ["online adaptation stopped to free memory",
                                      f"encoder input lowered from {W}x{H} to {W // 2}x{H // 2}"]
    assert all("out of memory on cpu (CUDA out of memory" in n for n in notes) and len(notes) == 2
    assert perceiver.adapter is None and resilient.out_of_memory == 2
    assert result.features.shape[:2] == (lowered[1] // 8, lowered[0] // 8)
    assert (result.detections.boxes[:, 0] + result.detections.boxes[:, 2] <= W + 1e-3).all()  # input pixels still
    for frame in frames[1:]:  # no further steps once the budget is met
        resilient.process(frame)
    assert len(resilient.degradations) == 2 and served[1:] == [lowered, lowered]
    values = resilient.values()
    assert values["encoder_input"] == f"{W // 2}x{H // 2}" and "adaptation stopped" in values["degraded"]


def test_out_of_memory_with_no_step_left_raises(perceiver):
    resilient = ResilientPerceiver(perceiver, min_side=32)
    _memory_budget(perceiver, budget_pixels=100, adapter_cost=0)
    with pytest.raises(torch.OutOfMemoryError):
        resilient.process(_frames(1)[0])
    assert resilient.degradations == [f"encoder input lowered from {W}x{H} to {W // 2}x{H // 2}"]
