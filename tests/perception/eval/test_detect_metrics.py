"""Detection and tracking metrics of the MOT15 protocol on hand-made cases with values derived by hand."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from perception.eval.detection_metrics import (FP, IGNORED, TP, average_precision, detection_summary,
                                               fp_per_frame_at_recall, match_detections, operating_point, pr_curve)
from perception.eval.mot import FrameTruth, drop_ignored_hypotheses, iou_distances, load_mot_gt, tracking_metrics


def box(x: float, y: float, w: float = 10, h: float = 20) -> list[float]:
    return [x, y, w, h]


def dets(boxes: list[list[float]], scores: list[float]) -> tuple[np.ndarray, np.ndarray]:
    return np.asarray(boxes, np.float64).reshape(-1, 4), np.asarray(scores, np.float64)


def test_load_gt_splits_valid_and_ignore(tmp_path: Path) -> None:
    gt = tmp_path / "gt.txt"
    gt.write_text("1,1,10,20,5,10,1,-1,-1,-1\n1,7,0,0,4,4,0,-1,-1,-1\n3,1,11,21,5,10,1,-1,-1,-1\n")
    truth = load_mot_gt(gt)
    assert sorted(truth) == [1, 3]
    np.testing.assert_array_equal(truth[1].boxes, [[10, 20, 5, 10]])
    np.testing.assert_array_equal(truth[1].ids, [1])
    np.testing.assert_array_equal(truth[1].ignore, [[0, 0, 4, 4]])
    bad = tmp_path / "bad.txt"
    bad.write_text("1,1,10\n")
    with pytest.raises(ValueError, match="bad.txt:1"):
        load_mot_gt(bad)


def test_matching_by_hand() -> None:
    # frame 1: gt A at (0,0), gt B at (100,0); ignore region at (200,0)
    # detections: 0.9 on A (IoU 1) -> TP; 0.8 on A shifted by 5 px in x (IoU 5*20/(2*200-100)=1/3 with A) -> FP;
    # 0.7 on the ignore box -> dropped; 0.6 on B shifted 2 px (IoU 160/240=2/3) -> TP; 0.5 far away -> FP
    truth = {1: FrameTruth(np.array([box(0, 0), box(100, 0)]), np.array([1, 2]), np.array([box(200, 0)]))}
    d = {1: dets([box(5, 0), box(0, 0), box(200, 0), box(102, 0), box(400, 0)], [0.8, 0.9, 0.7, 0.6, 0.5])}
    scores, outcome, n_valid = match_detections(d, truth, [1])
    np.testing.assert_allclose(scores, [0.9, 0.8, 0.7, 0.6, 0.5])
    np.testing.assert_array_equal(outcome, [TP, FP, IGNORED, TP, FP])
    assert n_valid == 2
    curve = pr_curve(scores, outcome, n_valid)
    # ignored dropped: TP FP TP FP -> precision 1, 1/2, 2/3, 2/4; recall .5 .5 1 1
    np.testing.assert_allclose(curve.precision, [1, 0.5, 2 / 3, 0.5])
    np.testing.assert_allclose(curve.recall, [0.5, 0.5, 1, 1])
    # envelope: 1, 2/3, 2/3, 1/2 -> AP = 0.5 * 1 + 0.5 * 2/3
    assert average_precision(curve) == pytest.approx(0.5 + 1 / 3)
    # F1: 2/3, 1/2, 4/5, 2/3 -> best at threshold 0.6
    op = operating_point(curve)
    assert curve.thresholds[op] == pytest.approx(0.6)
    summary = detection_summary(curve, n_frames=2)
    assert summary["fp_per_frame"] == pytest.approx(0.5) and summary["tp"] == 2 and summary["fn"] == 0
    assert fp_per_frame_at_recall(curve, 1.0, 2) == pytest.approx(0.5)
    assert fp_per_frame_at_recall(curve, 0.5, 2) == pytest.approx(0.0)
    assert fp_per_frame_at_recall(pr_curve(scores[:1], outcome[:1], 2), 0.9, 2) is None


def test_matching_is_one_to_one_and_f1_ties_go_to_higher_threshold() -> None:
    truth = {1: FrameTruth(np.array([box(0, 0)]), np.array([1]), np.zeros((0, 4))),
             2: FrameTruth(np.array([box(0, 0)]), np.array([1]), np.zeros((0, 4)))}
    # frame 1: two detections on the only gt box -> the second is FP; frame 2: a FP then a TP
    d = {1: dets([box(0, 0), box(0, 0)], [0.9, 0.8]), 2: dets([box(50, 0), box(0, 0)], [0.7, 0.6])}
    scores, outcome, _ = match_detections(d, truth, [1, 2])
    np.testing.assert_array_equal(outcome, [TP, FP, FP, TP])
    curve = pr_curve(scores, outcome, 2)
    # F1 per threshold: 0.9: P 1 R .5 -> 2/3; 0.8: P .5 R .5 -> .5; 0.7: P 1/3 R .5 -> .4; 0.6: P .5 R 1 -> 2/3
    np.testing.assert_allclose(curve.f1, [2 / 3, 0.5, 0.4, 2 / 3])
    assert curve.thresholds[operating_point(curve)] == pytest.approx(0.9)


def test_equal_scores_form_one_threshold() -> None:
    truth = {1: FrameTruth(np.array([box(0, 0)]), np.array([1]), np.zeros((0, 4)))}
    scores, outcome, n = match_detections({1: dets([box(0, 0), box(60, 0)], [0.5, 0.5])}, truth, [1])
    curve = pr_curve(scores, outcome, n)
    np.testing.assert_allclose(curve.thresholds, [0.5])
    np.testing.assert_allclose(curve.precision, [0.5])
    assert average_precision(curve) == pytest.approx(0.5)


def test_ignore_removal_keeps_hypotheses_matched_to_valid_gt() -> None:
    truth = FrameTruth(np.array([box(0, 0)]), np.array([1]), np.array([box(0, 0), box(300, 0)]))
    keep = drop_ignored_hypotheses(np.array([box(0, 0), box(301, 0), box(600, 0)]), truth)
    np.testing.assert_array_equal(keep, [True, False, True])


def test_iou_distances_nan_below_half() -> None:
    d = iou_distances(np.array([box(0, 0)]), np.array([box(0, 0), box(2, 0), box(5, 0)]))
    assert d[0, 0] == pytest.approx(0.0)
    assert d[0, 1] == pytest.approx(1 - 160 / 240)
    assert math.isnan(d[0, 2])


def test_tracking_metrics_by_hand() -> None:
    # one object over 4 frames; hypotheses: id 5 in frames 1-2, id 6 in frames 3-4 (1 switch), a FP in frame 4
    truth = {f: FrameTruth(np.array([box(10 * f, 0)]), np.array([1]), np.zeros((0, 4))) for f in range(1, 5)}
    hyps = {1: (np.array([box(10, 0)]), np.array([5])), 2: (np.array([box(20, 0)]), np.array([5])),
            3: (np.array([box(30, 0)]), np.array([6])),
            4: (np.array([box(40, 0), box(300, 0)]), np.array([6, 7]))}
    m = tracking_metrics(truth, hyps, [1, 2, 3, 4])
    # MOTA = 1 - (FN 0 + FP 1 + IDSW 1) / 4 = 0.5
    assert m["mota"] == pytest.approx(0.5)
    assert m["num_switches"] == 1 and m["num_false_positives"] == 1
    # IDF1: best one-to-one id mapping gives IDTP 2 (gt 1 <-> hyp 5 or 6); IDF1 = 2*2 / (4 gt + 5 hyp) = 4/9
    assert m["idf1"] == pytest.approx(4 / 9)
