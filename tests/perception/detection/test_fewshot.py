"""Few-shot head: fit on the first frames of the synthetic scene (static camera), save, load, detect the objects on
later frames through the detector registry; box prior and window helpers by hand."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from perception.config import ConfigError, DetectorConfig
from perception.detection.boxes import iou_matrix
from perception.detection.detector import build_detector
from perception.detection.fewshot import centre_on_profile, greedy_nms, load_head, save_head
from perception.detection.fewshot_fit import fit_head
from perception.detection.proposals import BoxPrior, candidate_windows, integral, region_mean
from perception.io.synthetic import SyntheticScene

FIT, TEST = 5, 15


@pytest.fixture(scope="module")
def scene() -> list:
    frames = list(SyntheticScene(width=320, height=240, num_frames=FIT + TEST, seed=3, num_objects=4,
                                 camera_motion=False, min_size=24, max_size=48, max_speed=3.0))
    return frames


def _dense(image: np.ndarray) -> np.ndarray:
    """A stand-in for encoder features: 8 fixed random projections of 8x8 colour blocks, (8, h/8, w/8)."""
    h, w = image.shape[0] // 8, image.shape[1] // 8
    blocks = image[: h * 8, : w * 8].reshape(h, 8, w, 8, 3).mean(axis=(1, 3)) / 255.0
    proj = np.random.default_rng(0).normal(size=(3, 8))
    return np.tanh(blocks @ proj).transpose(2, 0, 1).astype(np.float32)


def test_box_prior_by_hand() -> None:
    # heights 0.1, 0.2, 0.3 of the image at bottoms 0.3, 0.5, 0.7: h = -0.05 + 0.5 * bottom; aspect median 0.5
    boxes = np.array([[0, 20, 5, 10], [0, 30, 10, 20], [0, 40, 14, 30]], float)
    prior = BoxPrior.fit(boxes, (100, 100))
    assert prior.a == pytest.approx(-0.05) and prior.b == pytest.approx(0.5)
    assert prior.aspect == pytest.approx(0.5)
    np.testing.assert_allclose(prior.height(np.array([0.9])), [0.4])
    windows = candidate_windows(prior, (100, 100), step=10, scales=(1.0,), aspects=(1.0,))
    bottom = windows[:, 1] + windows[:, 3]
    np.testing.assert_allclose(windows[:, 3], np.maximum(100 * (-0.05 + 0.5 * bottom / 100), 16.0))
    np.testing.assert_allclose(windows[:, 2], 0.5 * windows[:, 3])


def test_region_mean_by_hand() -> None:
    values = np.arange(12, dtype=float).reshape(3, 4)
    table = integral(values)
    # rows 1..2, cols 1..2 -> 5, 6, 9, 10 -> mean 7.5; a region at half the map's resolution (scale 0.5)
    got = region_mean(table, np.array([1.0, 2.0]), np.array([1.0, 2.0]), np.array([3.0, 6.0]), np.array([3.0, 6.0]),
                      1.0)
    assert got[0] == pytest.approx(7.5)
    assert got[1] == pytest.approx(values[2:, 2:].mean())  # clipped to the map: rows 2, cols 2..3 -> 10, 11
    # at 0.5 map cells per pixel, pixels [2, 6) x [2, 6) are cells [1, 3) x [1, 3)
    assert region_mean(table, np.array([2.0]), np.array([2.0]), np.array([6.0]), np.array([6.0]), 0.5)[0] == \
        pytest.approx(values[1:3, 1:3].mean())


def test_greedy_nms_suppresses_nested_windows() -> None:
    boxes = np.array([[0, 0, 10, 20], [1, 1, 8, 16], [30, 0, 10, 20], [0, 10, 10, 20]], float)
    scores = np.array([0.9, 0.8, 0.7, 0.6])
    # IoU(0, 1) = 128/200 = 0.64 > 0.5: gone; box 3 overlaps box 0 by 100/300 = 1/3 IoU: kept at 0.5
    np.testing.assert_array_equal(greedy_nms(boxes, scores, 0.5, 10), [0, 2, 3])
    # with containment 0.4, box 3 (half inside box 0) is suppressed too
    np.testing.assert_array_equal(greedy_nms(boxes, scores, 0.5, 10, containment=0.4), [0, 2])
    np.testing.assert_array_equal(greedy_nms(boxes, scores, 0.5, 1), [0])


def _recall_precision(detector, frames: list) -> tuple[float, float]:
    tp = n_gt = n_det = 0
    for frame in frames:
        dets = detector.detect(frame.image, _dense(frame.image))
        keep = dets.scores >= 0.5
        boxes = dets.boxes[keep]
        n_gt += len(frame.boxes)
        n_det += len(boxes)
        if len(boxes) and len(frame.boxes):
            overlap = iou_matrix(frame.boxes, boxes)
            tp += int((overlap.max(axis=1) >= 0.5).sum())
    return tp / max(n_gt, 1), tp / max(n_det, 1)


def test_fit_save_load_detect(scene: list, tmp_path: Path) -> None:
    fit = scene[:FIT]
    head = fit_head([f.image for f in fit], [f.boxes for f in fit], None, [_dense(f.image) for f in fit],
                    {"name": "test-projection"}, "thing")
    assert head.meta["fit"]["boxes"] == sum(len(f.boxes) for f in fit)
    assert head.meta["features"]["cell_features"] == 8 + 3
    path = save_head(head, tmp_path / "head")
    assert path.name == "head.safetensors" and (tmp_path / "head.json").is_file()
    loaded = load_head(tmp_path / "head.json")
    for key, value in head.tensors.items():
        np.testing.assert_array_equal(loaded.tensors[key], value)
    detector = build_detector(DetectorConfig(method="fewshot", fewshot_head=str(tmp_path / "head")))
    for frame in fit:  # the labelled frames run through the detector too (background and tracks warm up)
        detector.detect(frame.image, _dense(frame.image))
    recall, precision = _recall_precision(detector, scene[FIT:])
    assert recall >= 0.7, recall
    assert precision >= 0.7, precision
    dets = detector.detect(scene[-1].image, _dense(scene[-1].image))
    assert set(dets.class_ids) <= {"thing"} and (dets.track_ids > 0).all()


def test_missing_head_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="fewshot_head"):
        build_detector(DetectorConfig(method="fewshot"))
    with pytest.raises(ConfigError, match="does not exist"):
        build_detector(DetectorConfig(method="fewshot", fewshot_head=str(tmp_path / "nope")))


def test_copy_paste_frames_put_scaled_people_on_the_background() -> None:
    from perception.detection.fewshot_augment import cutouts, synthetic_frames

    background = np.full((120, 160, 3), 90, np.uint8)
    image = background.copy()
    image[40:80, 50:66] = 220  # one 16x40 "person" with its foot at row 80
    fg = np.zeros((120, 160), np.float32)
    fg[40:80, 50:66] = 1.0
    pieces = cutouts([image], [np.array([[50, 40, 16, 40.0]])], [fg])
    assert len(pieces) == 1 and pieces[0].pixels.shape == (40, 16, 3)
    assert cutouts([image], [np.array([[150, 40, 16, 40.0]])], [fg]) == []  # box leaves the image
    prior = BoxPrior(a=-0.2, b=1.0, aspect=0.4, min_height=0.1, bottom_range=(0.5, 0.7))  # h/H = bottom/H - 0.2
    frames = synthetic_frames(background, pieces, prior, 6, np.random.default_rng(0), people=(2, 4))
    assert len(frames) == 6
    for img, boxes in frames:
        assert img.shape == background.shape and img.dtype == np.uint8 and len(boxes) >= 1
        bottom = (boxes[:, 1] + boxes[:, 3]) / 120
        np.testing.assert_allclose(boxes[:, 3] / 120, prior.height(bottom), rtol=0.12, atol=0.02)  # on the prior
        np.testing.assert_allclose(boxes[:, 2] / boxes[:, 3], 0.4, rtol=0.15)  # the cutout's aspect
        for x, y, w, h in boxes.astype(int):  # pasted pixels are bright where the box is inside the image
            inside = img[max(y, 0) + h // 4:y + 3 * h // 4, max(x, 0) + w // 4:x + 3 * w // 4]
            if inside.size:
                assert inside.mean() > 150


def test_centre_on_profile_moves_a_box_spanning_two_people_onto_one() -> None:
    foreground = np.zeros((200, 300), np.float32)
    foreground[50:150, 100:125] = 1.0  # two people side by side, 25 px wide, a 15 px gap between them
    foreground[50:150, 140:165] = 1.0
    foreground[120:150, 60:240] = 0.0  # legs apart from the bodies do not matter: only the top half is profiled
    boxes = np.array([[112.5, 50.0, 40.0, 100.0],  # centred on the gap: spans both
                      [92.5, 50.0, 40.0, 100.0],  # a person already centred: stays
                      [5.0, 50.0, 40.0, 100.0]])  # no foreground anywhere near: stays
    moved = centre_on_profile(boxes, foreground)
    centres = moved[:, 0] + moved[:, 2] / 2
    # onto one of the two people (the smoothed profile of a 25 px person under a 20 px average has a 6 px flat top:
    # the climb stops at its near end)
    assert min(abs(centres[0] - 112.5), abs(centres[0] - 152.5)) <= 4
    assert abs(centres[1] - 112.5) <= 4
    assert centres[2] == pytest.approx(25.0)
    np.testing.assert_array_equal(moved[:, 1:], boxes[:, 1:])  # only x changes
    far = centre_on_profile(boxes[:1], foreground, max_shift=0.1)
    assert far[0, 0] == pytest.approx(112.5)  # the nearest peak is 20 px = 0.5 widths away: not moved
