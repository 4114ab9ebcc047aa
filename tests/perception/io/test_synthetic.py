"""SyntheticScene: determinism, ground truth that matches the pixels, camera motion, occlusion scenario."""

from __future__ import annotations

import numpy as np
import pytest

from perception.io.frame import FrameSource, SourceError
from perception.io.synthetic import SyntheticScene


def test_protocol_length_and_stamps() -> None:
    scene = SyntheticScene(width=320, height=240, num_frames=12, fps=25.0)
    assert isinstance(scene, FrameSource)
    assert len(scene) == 12 and scene.size == (320, 240) and scene.fps == 25.0
    frames = list(scene)
    assert [f.seq for f in frames] == list(range(12))
    assert [f.stamp_ns for f in frames] == [i * 40_000_000 for i in range(12)]
    f = frames[3]
    assert f.image.shape == (240, 320, 3) and f.image.dtype == np.uint8 and f.image.flags.c_contiguous
    assert f.boxes.dtype == np.float32 and f.boxes.shape == (len(f.track_ids), 4)
    assert f.track_ids.dtype == np.int64


def test_same_seed_same_frames_other_seed_differs() -> None:
    a = SyntheticScene(num_frames=20, seed=3)
    b = SyntheticScene(num_frames=20, seed=3)
    c = SyntheticScene(num_frames=20, seed=4)
    for i in (0, 7, 19):
        fa, fb = a.frame(i), b.frame(i)
        assert np.array_equal(fa.image, fb.image)
        assert np.array_equal(fa.boxes, fb.boxes) and np.array_equal(fa.track_ids, fb.track_ids)
    assert not np.array_equal(a.frame(5).image, c.frame(5).image)
    # iterating twice (and random access) gives the same frames
    assert np.array_equal(list(a)[11].image, a.frame(11).image)


def test_boxes_cover_exactly_the_object_pixels() -> None:
    """Outside the boxes the image is the background seen through the camera window; each box edge touches a
    pixel that differs from the background, so boxes are tight."""
    scene = SyntheticScene(num_frames=80, seed=1)
    for i in (0, 25, 79):
        f = scene.frame(i)
        ox, oy = f.meta["camera_offset"]
        bg = scene.background[oy:oy + scene.height, ox:ox + scene.width]
        inside = np.zeros((scene.height, scene.width), bool)
        for x, y, w, h in f.boxes.astype(int):
            inside[y:y + h, x:x + w] = True
            differs = np.any(f.image[y:y + h, x:x + w] != bg[y:y + h, x:x + w], axis=2)
            assert differs[0].any() and differs[-1].any() and differs[:, 0].any() and differs[:, -1].any()
        assert np.array_equal(f.image[~inside], bg[~inside])
        assert np.all(f.boxes[:, :2] >= 0)
        assert np.all(f.boxes[:, 0] + f.boxes[:, 2] <= scene.width)
        assert np.all(f.boxes[:, 1] + f.boxes[:, 3] <= scene.height)
        assert np.all((f.meta["visible_fraction"] > 0) & (f.meta["visible_fraction"] <= 1))


def test_camera_pans_and_objects_leave_and_enter() -> None:
    scene = SyntheticScene(num_frames=300, seed=0)
    offsets = np.array([scene.frame(i).meta["camera_offset"] for i in range(0, 300, 10)])
    steps = np.abs(np.diff(scene.camera, axis=0)).max()
    assert np.ptp(offsets[:, 0]) > 60 and np.ptp(offsets[:, 1]) > 60 and steps <= 6
    still = SyntheticScene(num_frames=30, seed=0, camera_motion=False)
    assert len({tuple(still.frame(i).meta["camera_offset"]) for i in range(30)}) == 1
    visible = [set(scene.frame(i).track_ids.tolist()) for i in range(300)]
    assert any(len(v) < 5 for v in visible) and any(len(v) == 5 for v in visible)
    sizes = np.concatenate([s.mask.shape for s in scene.sprites])
    assert sizes.min() >= 30 and sizes.max() <= 150


def test_occlusion_scenario_hides_object_one_behind_object_zero() -> None:
    scene = SyntheticScene(scenario="occlusion", num_objects=2, num_frames=120, occlusion_frame=60)
    present = np.array([1 in scene.frame(i).track_ids for i in range(120)])
    hidden = np.flatnonzero(~present[:100])  # later it leaves the view
    assert present[30:50].all() and present[70:90].all()
    assert 4 <= hidden.size <= 15 and np.all(np.diff(hidden) == 1) and 50 <= hidden.mean() <= 70
    before = scene.frame(int(hidden[0]) - 3)
    fraction = before.meta["visible_fraction"][list(before.track_ids).index(1)]
    assert 0 < fraction < 0.6  # sliding behind the occluder, partly visible


def test_invalid_arguments_name_the_problem() -> None:
    with pytest.raises(SourceError, match="scenario"):
        SyntheticScene(scenario="crowd")
    with pytest.raises(SourceError, match="too small"):
        SyntheticScene(width=10, height=10)
    with pytest.raises(IndexError, match="out of range"):
        SyntheticScene(num_frames=3).frame(3)


def test_noise_is_added_and_deterministic() -> None:
    clean = SyntheticScene(num_frames=2, seed=2).frame(1).image.astype(int)
    noisy = SyntheticScene(num_frames=2, seed=2, noise_std=4.0).frame(1).image.astype(int)
    assert 2.5 < np.std(noisy - clean) < 5.5
    assert np.array_equal(noisy, SyntheticScene(num_frames=2, seed=2, noise_std=4.0).frame(1).image)
