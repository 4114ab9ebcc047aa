"""Clip sampling (frame indices, gaps, rank sharding, per-frame shifts) and the Lab colour targets."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import torch

from perception.train.colour import ColourPropagationLoss, colour_targets, rgb_to_lab
from perception.train.config import load_train_config
from perception.train.data import ClipLoader, ClipSampler, load_clip, open_clip_source


def test_sampler_is_deterministic_and_shards_by_rank(clip_video: Path) -> None:
    cfg = load_train_config(None, ["loss.colour_gaps=[1]", "data.clip_len=3", "data.gaps=[1,4]", "data.crop=[64,64]", "data.jitter=8"]).data
    source = open_clip_source(clip_video, cfg)
    assert source.num_frames == 24
    sampler = ClipSampler([source], cfg, batch_size=2, seed=5)
    everyone = sampler.specs(7, 0, 1) + ClipSampler([source], cfg, 4, 5).specs(7, 0, 1)[2:]
    assert sampler.specs(7, 0, 1) == ClipSampler([source], cfg, 2, 5).specs(7, 0, 1)
    rank0, rank1 = ClipSampler([source], cfg, 2, 5).specs(7, 0, 2), ClipSampler([source], cfg, 2, 5).specs(7, 1, 2)
    assert len(rank0) == len(rank1) == 2 and not set(rank0) & set(rank1)
    assert len(everyone) == 4
    specs = [s for step in range(40) for s in sampler.specs(step)]
    assert {s.gap for s in specs} == {1, 4}
    assert all(s.start + 2 * s.gap < 24 for s in specs)
    assert all(len(s.shifts) == 3 and all(abs(d) <= 8 for sh in s.shifts for d in sh) for s in specs)


def test_clip_frames_follow_the_spec(clip_folder: Path) -> None:
    cfg = load_train_config(None, ["loss.colour_gaps=[1]", "data.clip_len=3", "data.crop=[64,96]", "data.scale=[1.0,1.0]", "data.flip=false",
                                   "data.cache_frames=false", "data.min_side=16"]).data
    loader = ClipLoader([clip_folder], cfg, batch_size=1, seed=0)
    spec = loader.sampler.specs(0)[0]
    clip = load_clip(loader.sources[0], spec, cfg)
    full = cv2.cvtColor(cv2.imread(str(clip_folder / f"{spec.start + spec.gap:04d}.png")), cv2.COLOR_BGR2RGB)
    y, x = round(spec.crop_y * (96 - 64)), round(spec.crop_x * (128 - 96))
    assert clip.shape == (3, 64, 96, 3)
    np.testing.assert_array_equal(clip[1], full[y:y + 64, x:x + 96])
    batch = loader.batch(0)
    assert batch.shape == (1, 3, 3, 64, 96) and 0.0 <= float(batch.min()) and float(batch.max()) <= 1.0


def test_lab_matches_opencv_and_targets_pool_cells() -> None:
    rng = np.random.default_rng(0)
    image = rng.random((16, 24, 3), dtype=np.float32)
    expected = cv2.cvtColor(image, cv2.COLOR_RGB2Lab)
    got = rgb_to_lab(torch.from_numpy(image).permute(2, 0, 1)[None])[0].permute(1, 2, 0).numpy()
    np.testing.assert_allclose(got, expected, atol=0.3)  # OpenCV quantises its float Lab
    targets = colour_targets(torch.from_numpy(image).permute(2, 0, 1)[None])
    assert targets.shape == (1, 15, 2, 3)
    lab = (expected - np.array([50, 0, 0], np.float32)) / np.array([25, 15, 15], np.float32)
    np.testing.assert_allclose(targets[0, :3, 1, 2].numpy(), lab[8:16, 16:24].mean(axis=(0, 1)), atol=0.01)
    np.testing.assert_allclose(targets[0, 3:15:4, 0, 0].numpy(), lab[0:4, 0:4].mean(axis=(0, 1)), atol=0.01)


def test_colour_propagation_copies_through_matching_features() -> None:
    colours = torch.randn(1, 3, 4, 4)
    features = torch.eye(16).view(1, 16, 4, 4)  # one-hot: every cell matches only itself
    perm = torch.randperm(16, generator=torch.Generator().manual_seed(0))
    moved_f = features.flatten(2)[:, :, perm].view(1, 16, 4, 4)
    moved_c = colours.flatten(2)[:, :, perm].view(1, 3, 4, 4)
    loss = ColourPropagationLoss(temperature=0.01)
    assert float(loss(moved_f, features, moved_c, colours)) < 1e-6
    blurred = torch.ones(1, 16, 4, 4)  # collapsed features: every cell reads the mean colour
    assert float(loss(blurred, blurred, moved_c, colours)) > 0.01


def test_prefetching_workers_give_the_same_batches(clip_video: Path) -> None:
    overrides = ["loss.colour_gaps=[1]", "data.clip_len=3", "data.gaps=[1,2]", "data.crop=[64,64]", "data.jitter=4"]
    plain = ClipLoader([clip_video], load_train_config(None, overrides).data, batch_size=3, seed=2)
    threaded = ClipLoader([clip_video], load_train_config(None, overrides + ["data.workers=2", "data.prefetch=3"]).data,
                          batch_size=3, seed=2)
    try:
        for step in (0, 1, 2, 5, 6):  # a jump (as after a resume) drops the stale prefetched steps
            torch.testing.assert_close(threaded.batch(step), plain.batch(step), rtol=0, atol=0)
        assert all(key[0] > 6 for key in threaded._pending)
    finally:
        threaded.close()


def test_opencv_decoding_matches_pyav_when_pyav_is_missing(clip_video: Path, monkeypatch) -> None:
    from perception.train import data  # noqa: PLC0415

    cfg = load_train_config(None, ["loss.colour_gaps=[1]", "data.clip_len=3"]).data
    with_pyav = open_clip_source(clip_video, cfg)
    monkeypatch.setattr(data, "_pyav_available", lambda: False)
    with_opencv = open_clip_source(clip_video, cfg)
    assert with_opencv.num_frames == with_pyav.num_frames == 24
    for a, b in zip(with_opencv.frames, with_pyav.frames):  # both FFmpeg underneath; colour conversion may differ
        assert a.shape == b.shape and np.abs(a.astype(int) - b.astype(int)).mean() < 3.0
