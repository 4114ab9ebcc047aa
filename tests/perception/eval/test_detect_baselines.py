"""The protocol's baselines: HOG post-processing and greedy tracker by hand; HOG, its cache and MOG2 on real frames
(skipped without ../shared/data)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from perception.detection.boxes import iou_matrix
from perception.eval.baselines import (GreedyIoUTracker, HogParams, HogPeopleDetector, Mog2Detector,
                                       hog_detections_cached, hog_postprocess, hog_scale_for)
from perception.eval.detect import read_video
from perception.eval.mot import load_mot_gt


def test_hog_postprocess_shrinks_then_suppresses() -> None:
    raw = np.array([[100, 100, 64, 128], [104, 100, 64, 128], [300, 50, 64, 128]], float)
    boxes, scores = hog_postprocess(raw, np.array([0.5, 0.9, 0.2]))
    # shrink: x + 0.15 * 64 = x + 9.6, y + 6.4, w 44.8, h 115.2; the two near ones overlap (IoU > 0.5): keep 0.9
    np.testing.assert_allclose(boxes, [[113.6, 106.4, 44.8, 115.2], [309.6, 56.4, 44.8, 115.2]])
    np.testing.assert_allclose(scores, [0.9, 0.2])


def test_hog_scale_per_sequence() -> None:
    assert hog_scale_for("/data/videos/vtest.avi") == 2.0
    assert hog_scale_for("PETS09-S2L1.mp4") == 2.0
    assert hog_scale_for("TUD-Campus.mp4") == 1.0


def test_greedy_tracker_by_hand() -> None:
    tracker = GreedyIoUTracker(iou=0.3, max_misses=1)
    a, b = [0, 0, 10, 10], [100, 0, 10, 10]
    np.testing.assert_array_equal(tracker.update(np.array([a, b]), np.array([0.9, 0.8])), [1, 2])
    # a moved by 2 px (IoU 80/120 = 0.67): same id; b moved by 6 px (IoU 40/160 = 0.25 < 0.3): new id 3
    np.testing.assert_array_equal(tracker.update(np.array([[2, 0, 10, 10], [106, 0, 10, 10]]), np.array([.9, .8])),
                                  [1, 3])
    tracker.update(np.zeros((0, 4)), np.zeros(0))  # every track misses once: still alive
    np.testing.assert_array_equal(tracker.update(np.array([[2, 0, 10, 10]]), np.array([0.9])), [1])
    tracker.update(np.zeros((0, 4)), np.zeros(0))
    tracker.update(np.zeros((0, 4)), np.zeros(0))  # two misses in a row: track 1 is gone
    np.testing.assert_array_equal(tracker.update(np.array([[2, 0, 10, 10]]), np.array([0.9])), [4])


def test_greedy_tracker_matches_highest_iou_first() -> None:
    tracker = GreedyIoUTracker()
    tracker.update(np.array([[0, 0, 10, 10], [12, 0, 10, 10]]), np.array([1.0, 1.0]))
    # detection A at x=1 overlaps track 1 (IoU 90/110) and track 2 (0); B at x=11 overlaps track 1 (IoU 0) and track
    # 2 (IoU 90/110); C at x=0 overlaps track 1 with IoU 1: C takes track 1 first, although it scores lowest
    ids = tracker.update(np.array([[1, 0, 10, 10], [11, 0, 10, 10], [0, 0, 10, 10]]), np.array([0.9, 0.8, 0.1]))
    np.testing.assert_array_equal(ids, [3, 2, 1])


@pytest.fixture(scope="module")
def tud(shared_data: Path) -> tuple[Path, dict]:
    root = shared_data / "mot15" / "TUD-Campus"
    return root / "TUD-Campus.mp4", load_mot_gt(root / "gt" / "gt.txt")


def test_hog_on_a_real_frame_and_cache(tud: tuple[Path, dict], tmp_path: Path) -> None:
    video, truth = tud
    frame = next(read_video(video, 1))
    boxes, scores = HogPeopleDetector(HogParams(scale=1.0))(frame)
    assert len(boxes) >= 2 and np.all(np.diff(scores) <= 0)
    assert (iou_matrix(truth[1].boxes, boxes).max(axis=1) >= 0.5).sum() >= 1
    cached = hog_detections_cached(video, read_video(video, 1), 1, HogParams(scale=1.0), tmp_path)
    files = list(tmp_path.glob("hog_*.json"))
    assert len(files) == 1
    np.testing.assert_allclose(cached[0][0], boxes)
    again = hog_detections_cached(video, iter(()), 1, HogParams(scale=1.0), tmp_path)  # no frames: from the cache
    np.testing.assert_allclose(again[0][1], scores)


def test_mog2_finds_walking_people(shared_data: Path) -> None:
    truth = load_mot_gt(shared_data / "mot15" / "PETS09-S2L1" / "gt" / "gt.txt")
    detector = Mog2Detector()
    for i, frame in enumerate(read_video(shared_data / "videos" / "vtest.avi", 30)):
        boxes, scores = detector(frame)
    assert np.all(scores >= 50) and np.all(boxes[:, 2] * boxes[:, 3] >= scores)
    matched = (iou_matrix(truth[30].boxes, boxes).max(axis=1) >= 0.5).sum()
    assert matched >= 2, (matched, len(truth[30].boxes))
