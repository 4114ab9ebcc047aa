"""MultiCameraPerceiver: three cameras batched through one encoder give each camera exactly what it would get
alone (features, keyframes, detections, track ids, stamps), also when one camera skips frames."""

from __future__ import annotations

import gc

import numpy as np
import pytest

from perception.config import load_config
from perception.io.synthetic import SyntheticScene
from perception.models.encoder import DualStreamEncoder
from perception.runtime.latest_batch import LatestPerKey
from perception.runtime.multi_camera import MultiCameraPerceiver
from perception.runtime.perceiver import Perceiver

CAMERAS = ("front", "left", "right")


@pytest.fixture(scope="module")
def perceiver():
    cfg = load_config(None, ["encoder.name=dualstream_tiny", "encoder.global_every=2", "encoder.global_stages=1",
                             "runtime.device=cpu",
                             "runtime.precision=fp32", "runtime.warmup_frames=0", "runtime.publish_debug=false"])
    return Perceiver(cfg)


def scenes(frames: int) -> dict[str, list]:
    return {cam: list(SyntheticScene(width=320, height=240, num_frames=frames, seed=i))
            for i, cam in enumerate(CAMERAS)}


def test_batched_cameras_match_each_camera_alone(perceiver, one_torch_thread):
    clips = scenes(6)
    multi = MultiCameraPerceiver(perceiver, CAMERAS, align_keyframes=False)
    perceiver.reset()
    # left skips frame 2: its keyframe phase shifts, so it is encoded in its own group from then on
    schedule = [CAMERAS, CAMERAS, ("front", "right"), CAMERAS, CAMERAS, CAMERAS]
    seen = {cam: 0 for cam in CAMERAS}
    for k, cams in enumerate(schedule):
        batch = {cam: clips[cam][k] for cam in cams}
        results = multi.process(batch)
        assert list(results) == list(cams)
        for cam in cams:
            alone = perceiver.process(clips[cam][k], stream=cam)
            got = results[cam]
            assert got.stamp_ns == clips[cam][k].stamp_ns and got.seq == clips[cam][k].seq
            assert got.keyframe == alone.keyframe
            assert np.abs(got.features - alone.features).max() < 1e-4
            np.testing.assert_allclose(got.detections.boxes, alone.detections.boxes, atol=1e-3)
            assert list(got.detections.track_ids) == list(alone.detections.track_ids)
            seen[cam] += 1
    assert {cam: multi.states[cam].encoder.frame_index for cam in CAMERAS} == seen == {"front": 6, "left": 5,
                                                                                        "right": 6}
    # in phase: one batch of 3 (frames 0, 1); frame 2: front+right; then left's keyframes fall on the others'
    # in-between frames (global_every 2), so it is encoded apart: 3 batches of 2 and 3 of 1
    assert dict(multi.batches) == {3: 2, 2: 4, 1: 3}
    assert len({id(multi.states[cam].detector) for cam in CAMERAS}) == 3


def test_keyframe_alignment_keeps_batching_after_a_dropped_frame(perceiver):
    clips = scenes(6)
    multi = MultiCameraPerceiver(perceiver, CAMERAS)
    keyframes = {cam: [] for cam in CAMERAS}
    for k in range(6):
        cams = ("front", "right") if k == 2 else CAMERAS
        for cam, result in multi.process({cam: clips[cam][k] for cam in cams}).items():
            keyframes[cam].append(result.keyframe)
    assert dict(multi.batches) == {3: 5, 2: 1} and multi.realigned == 1
    assert keyframes["front"] == [True, False, True, False, True, False]
    assert keyframes["left"] == [True, False, False, True, False]  # its third frame shifted to the others' phase


def test_one_encoder_for_three_cameras(perceiver):
    gc.collect()
    before = sum(isinstance(o, DualStreamEncoder) for o in gc.get_objects())
    multi = MultiCameraPerceiver(perceiver, CAMERAS)
    multi.process({cam: clip[0] for cam, clip in scenes(1).items()})
    gc.collect()
    assert sum(isinstance(o, DualStreamEncoder) for o in gc.get_objects()) == before
    assert multi.encoder is perceiver.encoder


def test_reset_and_errors(perceiver):
    multi = MultiCameraPerceiver(perceiver, CAMERAS)
    multi.process({"front": scenes(1)["front"][0]})
    multi.reset("front")
    assert multi.states["front"].encoder is None
    with pytest.raises(KeyError, match=r"unknown camera\(s\) \['back'\]"):
        multi.process({"back": scenes(1)["front"][0]})
    with pytest.raises(ValueError, match="camera names repeat"):
        MultiCameraPerceiver(perceiver, ["a", "a"])


def test_latest_per_key_counts_drops_per_camera():
    slots: LatestPerKey = LatestPerKey()
    slots.put("a", 1)
    slots.put("a", 2)
    slots.put("b", 3)
    assert slots.take_all(timeout=0.1) == {"a": 2, "b": 3}
    assert slots.take_all(timeout=0.05) == {}
    assert dict(slots.dropped) == {"a": 1} and dict(slots.taken) == {"a": 1, "b": 1}
    slots.close()
    assert slots.take_all(timeout=None) == {}


@pytest.mark.gpu
def test_three_cameras_hold_one_model_in_gpu_memory():
    import torch

    if not torch.cuda.is_available():
        pytest.skip("needs CUDA")
    cfg = load_config(None, ["encoder.name=dualstream_tiny", "runtime.device=cuda", "runtime.warmup_frames=0"])
    base = torch.cuda.memory_allocated()
    multi = MultiCameraPerceiver(Perceiver(cfg), CAMERAS)
    weights = torch.cuda.memory_allocated() - base
    clips = scenes(4)
    for k in range(4):
        results = multi.process({cam: clips[cam][k] for cam in CAMERAS})
        assert all(r.features.shape == (30, 40, multi.encoder.out_channels) for r in results.values())
    param_bytes = sum(p.numel() * p.element_size() for p in multi.encoder.parameters())
    assert param_bytes <= weights < 1.5 * param_bytes  # one set of weights, not three
    assert dict(multi.batches) == {3: 4}


def test_staged_global_runs_batch_like_each_camera_alone(one_torch_thread):
    cfg = load_config(None, ["encoder.name=dualstream_tiny", "encoder.global_every=4", "encoder.global_stages=2",
                             "runtime.device=cpu", "runtime.precision=fp32", "runtime.warmup_frames=0",
                             "runtime.publish_debug=false"])
    perceiver = Perceiver(cfg)
    clips = scenes(9)
    multi = MultiCameraPerceiver(perceiver, CAMERAS, align_keyframes=False)
    for k in range(9):
        results = multi.process({cam: clips[cam][k] for cam in CAMERAS})
        for cam in CAMERAS:
            alone = perceiver.process(clips[cam][k], stream=cam)
            assert results[cam].keyframe == alone.keyframe == (k in (0, 5))
            assert np.abs(results[cam].features - alone.features).max() < 1e-4
    assert dict(multi.batches) == {3: 9}  # the pending runs stay in step, so every frame is one batch


def test_a_realigned_camera_drops_its_staged_run_and_batches_again():
    cfg = load_config(None, ["encoder.name=dualstream_tiny", "encoder.global_every=2", "encoder.global_stages=2",
                             "encoder.global_start_scale=0",  # every token grid the same: batches only follow phase
                             "runtime.device=cpu", "runtime.precision=fp32", "runtime.warmup_frames=0",
                             "runtime.publish_debug=false"])
    multi = MultiCameraPerceiver(Perceiver(cfg), CAMERAS)
    clips = scenes(8)
    sizes = []
    for k in range(8):
        cams = ("front", "right") if k == 2 else CAMERAS  # left misses frame 2 and falls out of phase
        before = dict(multi.batches)
        results = multi.process({cam: clips[cam][k] for cam in cams})
        sizes.append({n: c - before.get(n, 0) for n, c in multi.batches.items() if c - before.get(n, 0)})
        assert all(np.isfinite(r.features).all() for r in results.values())
    assert multi.realigned == 1
    assert sizes[-3:] == [{3: 1}] * 3  # one batch of three again once its next staged run began in phase
