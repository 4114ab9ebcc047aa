"""TwoStage: order, overlap, back-pressure, errors, close; and a perceiver run through it equals one run in series."""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest
import torch

from perception.config import load_config
from perception.io.synthetic import SyntheticScene
from perception.runtime.perceiver import Perceiver
from perception.runtime.staged import TwoStage


def test_every_item_is_finished_once_and_in_order():
    done: list[int] = []
    stage = TwoStage(done.append)
    for i in range(50):
        stage.submit(i)
    stage.drain()
    assert done == list(range(50))
    assert stage.close() and not stage.alive
    with pytest.raises(RuntimeError, match="closed"):
        stage.submit(50)


def test_the_halves_overlap():
    """20 items, 30 ms in each half: about 20 x 30 ms overlapped against 20 x 60 ms in series."""
    stage = TwoStage(lambda item: time.sleep(0.03))
    started = time.perf_counter()
    for i in range(20):
        time.sleep(0.03)             # the first half of item i
        stage.submit(i)
    stage.drain()
    elapsed = time.perf_counter() - started
    stage.close()
    assert 0.6 <= elapsed < 0.95, elapsed


def test_submit_waits_while_an_earlier_item_is_queued():
    release = threading.Event()
    stage = TwoStage(lambda item: release.wait(5.0))
    stage.submit(0)                  # taken by the worker, which blocks on it
    time.sleep(0.05)
    stage.submit(1)                  # queued
    third = threading.Thread(target=stage.submit, args=(2,))
    third.start()
    third.join(0.2)
    assert third.is_alive()          # back-pressure: no queue grows behind a slow second half
    release.set()
    third.join(2.0)
    assert not third.is_alive()
    assert stage.close()


def test_an_error_is_reported_and_the_worker_goes_on():
    done: list[int] = []
    errors: list[tuple[int, str]] = []

    def finish(item: int) -> None:
        if item == 3:
            raise ValueError("bad frame")
        done.append(item)

    stage = TwoStage(finish, lambda item, exc: errors.append((item, str(exc))))
    for i in range(6):
        stage.submit(i)
    stage.close()
    assert done == [0, 1, 2, 4, 5] and errors == [(3, "bad frame")]


def test_a_perceiver_through_two_stages_equals_the_same_perceiver_in_series():
    """Encode on this thread, detection on the worker: the same features, boxes and track ids, frame by frame
    (the tracker sees every encoded frame in order)."""
    cfg = load_config(None, ["encoder.name=dualstream_tiny", "runtime.device=cpu", "runtime.warmup_frames=0",
                             "encoder.input_width=320", "encoder.input_height=240", "encoder.global_every=3"])
    frames = list(SyntheticScene(width=320, height=240, num_frames=12, seed=5))
    torch.manual_seed(0)
    serial = Perceiver(cfg)
    staged = Perceiver(cfg)
    staged.encoder.load_state_dict(serial.encoder.state_dict())
    expected = [serial.process(f) for f in frames]
    got = []
    stage = TwoStage(lambda encoded: got.append(staged.finish(encoded)))
    for frame in frames:
        stage.submit(staged.encode(frame))
    stage.close()
    assert len(got) == len(expected) == 12
    assert sum(len(r.detections) for r in expected) > 0
    for a, b in zip(expected, got):
        assert a.seq == b.seq and a.keyframe == b.keyframe
        np.testing.assert_array_equal(a.features, b.features)
        np.testing.assert_array_equal(a.detections.boxes, b.detections.boxes)
        np.testing.assert_array_equal(a.detections.track_ids, b.detections.track_ids)
        assert set(b.timings_ms) >= {"preprocess", "encoder", "detection", "total"}
