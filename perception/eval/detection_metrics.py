"""Detection metrics of the MOT15 detection protocol (EVAL_PROTOCOL.md, "Detection on MOT15 sequences").

Matching (PASCAL VOC style, Everingham et al., IJCV 2010, with MOTChallenge ignore regions): all detections of all
scored frames are sorted by score, descending (stable); each takes the unmatched valid gt box of its frame with the
highest IoU: IoU >= 0.5 is a true positive; otherwise IoU >= 0.5 with an ignore box drops it (neither TP nor FP);
otherwise it is a false positive. FN = valid gt - TP.

AP50: all-point interpolation (VOC 2010 onwards): precision made non-increasing from the right, summed over the
recall steps. The operating point is the score threshold with the best F1 (ties: the higher threshold); a threshold
``t`` keeps the detections with ``score >= t``, so thresholds are the distinct scores.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from perception.detection.boxes import iou_matrix
from perception.eval.mot import FrameTruth

MATCH_IOU = 0.5
TP, FP, IGNORED = 1, 0, -1


def match_detections(detections: dict[int, tuple[np.ndarray, np.ndarray]], truth: dict[int, FrameTruth],
                     frames: list[int], iou: float = MATCH_IOU) -> tuple[np.ndarray, np.ndarray, int]:
    """``(scores, outcome, n_valid)`` over ``frames``: the scores of all detections sorted descending (stable, by
    frame order then detection order), each one's outcome (``TP`` 1, ``FP`` 0, ``IGNORED`` -1), and the number of
    valid gt boxes. ``detections[frame] = (boxes (N, 4) x, y, w, h, scores (N,))``."""
    all_scores, all_frames, all_index = [], [], []
    n_valid = 0
    for frame in frames:
        n_valid += len(truth.get(frame, FrameTruth()).boxes)
        boxes, scores = detections.get(frame, (np.zeros((0, 4)), np.zeros(0)))
        scores = np.asarray(scores, np.float64).reshape(-1)
        all_scores.append(scores)
        all_frames.append(np.full(len(scores), frame))
        all_index.append(np.arange(len(scores)))
    scores = np.concatenate(all_scores) if all_scores else np.zeros(0)
    frame_of = np.concatenate(all_frames) if all_frames else np.zeros(0, np.int64)
    index_of = np.concatenate(all_index) if all_index else np.zeros(0, np.int64)
    order = np.argsort(-scores, kind="stable")
    outcome = np.zeros(len(order), np.int64)
    used: dict[int, np.ndarray] = {}
    overlaps: dict[int, tuple[np.ndarray, np.ndarray]] = {}
    for rank, k in enumerate(order):
        frame, d = int(frame_of[k]), int(index_of[k])
        if frame not in overlaps:
            gt = truth.get(frame, FrameTruth())
            boxes = np.asarray(detections[frame][0], np.float64).reshape(-1, 4)
            overlaps[frame] = (iou_matrix(boxes, gt.boxes), iou_matrix(boxes, gt.ignore))
            used[frame] = np.zeros(len(gt.boxes), bool)
        valid_iou, ignore_iou = overlaps[frame]
        row = np.where(used[frame], -1.0, valid_iou[d]) if valid_iou.shape[1] else np.zeros(0)
        if row.size and row.max() >= iou:
            used[frame][int(np.argmax(row))] = True
            outcome[rank] = TP
        elif ignore_iou.shape[1] and ignore_iou[d].max() >= iou:
            outcome[rank] = IGNORED
        else:
            outcome[rank] = FP
    return scores[order], outcome, n_valid


@dataclass
class PRCurve:
    """Precision/recall at each distinct score threshold (descending): ``thresholds``, ``tp``, ``fp``."""

    thresholds: np.ndarray
    tp: np.ndarray
    fp: np.ndarray
    n_valid: int

    @property
    def recall(self) -> np.ndarray:
        return self.tp / max(self.n_valid, 1)

    @property
    def precision(self) -> np.ndarray:
        total = self.tp + self.fp
        return np.where(total > 0, self.tp / np.maximum(total, 1), 1.0)

    @property
    def f1(self) -> np.ndarray:
        p, r = self.precision, self.recall
        return np.where(p + r > 0, 2 * p * r / np.maximum(p + r, 1e-12), 0.0)


def pr_curve(scores: np.ndarray, outcome: np.ndarray, n_valid: int) -> PRCurve:
    """Cumulative counts at each distinct score (sorted descending; ignored detections count for nothing)."""
    keep = outcome != IGNORED
    s, o = scores[keep], outcome[keep]
    tp, fp = np.cumsum(o == TP), np.cumsum(o == FP)
    last = np.flatnonzero(np.append(s[1:] != s[:-1], True)) if s.size else np.zeros(0, np.int64)
    return PRCurve(s[last], tp[last].astype(np.float64), fp[last].astype(np.float64), n_valid)


def average_precision(curve: PRCurve) -> float:
    """All-point interpolated AP: the precision envelope summed over recall steps."""
    if curve.n_valid == 0 or curve.tp.size == 0:
        return 0.0
    recall = np.concatenate([[0.0], curve.recall])
    precision = np.concatenate([[1.0], curve.precision])
    envelope = np.maximum.accumulate(precision[::-1])[::-1]
    return float(np.sum((recall[1:] - recall[:-1]) * envelope[1:]))


def operating_point(curve: PRCurve) -> int:
    """Index of the threshold with the best F1; ties go to the higher threshold (the earlier index); -1 if none."""
    if curve.tp.size == 0:
        return -1
    return int(np.argmax(curve.f1))  # argmax returns the first maximum: thresholds are descending


def fp_per_frame_at_recall(curve: PRCurve, recall: float, n_frames: int) -> float | None:
    """The lowest FP/frame over thresholds whose recall reaches ``recall``; None if none does."""
    ok = curve.recall >= recall - 1e-12
    if not ok.any():
        return None
    return float(curve.fp[ok].min() / max(n_frames, 1))


def detection_summary(curve: PRCurve, n_frames: int) -> dict:
    """Precision, recall, F1, AP50, FP/frame and the threshold at the operating point, plus the maximum recall."""
    op = operating_point(curve)
    if op < 0:
        return {"precision": 0.0, "recall": 0.0, "f1": 0.0, "ap50": 0.0, "fp_per_frame": 0.0, "threshold": None,
                "max_recall": 0.0, "tp": 0, "fp": 0, "fn": curve.n_valid}
    return {"precision": float(curve.precision[op]), "recall": float(curve.recall[op]), "f1": float(curve.f1[op]),
            "ap50": average_precision(curve), "fp_per_frame": float(curve.fp[op] / max(n_frames, 1)),
            "threshold": float(curve.thresholds[op]), "max_recall": float(curve.recall[-1]),
            "tp": int(curve.tp[op]), "fp": int(curve.fp[op]), "fn": int(curve.n_valid - curve.tp[op])}
