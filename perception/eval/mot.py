"""MOTChallenge ground truth and the CLEAR MOT / identity metrics through ``motmetrics``.

Ground truth: ``gt.txt`` rows ``frame, id, x, y, w, h, conf, wx, wy, wz`` (1-based frames; Milan et al.,
"MOT16: A Benchmark for Multi-Object Tracking", arXiv:1603.00831, Sec. 3). ``conf == 1`` rows are valid boxes;
``conf == 0`` rows are ignore regions (PETS09-S2L1: far people at the top). Boxes are kept as they are (not clipped).

Tracking metrics follow EVAL_PROTOCOL.md: one ``motmetrics.MOTAccumulator`` over the scored frames, distance
``1 - IoU`` with pairs below IoU 0.5 as NaN (computed here: motmetrics 1.4.0's own ``iou_matrix`` calls
``np.asfarray``, which numpy 2 removed), only valid gt; a hypothesis that no valid gt box takes (maximum-IoU
assignment at IoU >= 0.5) but that overlaps an ignore box with IoU >= 0.5 is removed first.
MOTA (Bernardin and Stiefelhagen, EURASIP JIVP 2008) and IDF1 (Ristani et al., ECCV 2016 workshops).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from scipy.optimize import linear_sum_assignment

from perception.detection.boxes import iou_matrix


@dataclass
class FrameTruth:
    """Ground truth of one frame: valid ``boxes`` (N, 4) x, y, w, h with their ``ids``, and ``ignore`` (M, 4)."""

    boxes: np.ndarray = field(default_factory=lambda: np.zeros((0, 4)))
    ids: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    ignore: np.ndarray = field(default_factory=lambda: np.zeros((0, 4)))


class GroundTruthError(ValueError):
    """A ground-truth file that cannot be read; the message names the file and line."""


def load_mot_gt(path: str | Path) -> dict[int, FrameTruth]:
    """``{gt frame (1-based): FrameTruth}`` from a MOTChallenge ``gt.txt`` (every frame that has a row)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"ground truth {path} does not exist")
    rows: dict[int, tuple[list, list, list]] = {}
    for number, line in enumerate(path.read_text().splitlines(), 1):
        if not line.strip():
            continue
        parts = line.replace(" ", "").split(",")
        if len(parts) < 7:
            raise GroundTruthError(f"{path}:{number}: expected at least 7 comma-separated fields "
                                   f"(frame,id,x,y,w,h,conf), got {len(parts)}")
        try:
            frame, ident = int(float(parts[0])), int(float(parts[1]))
            box = [float(v) for v in parts[2:6]]
            conf = float(parts[6])
        except ValueError as exc:
            raise GroundTruthError(f"{path}:{number}: {exc}") from None
        valid, ids, ignore = rows.setdefault(frame, ([], [], []))
        if conf == 1:
            valid.append(box)
            ids.append(ident)
        elif conf == 0:
            ignore.append(box)
    return {f: FrameTruth(np.asarray(v, np.float64).reshape(-1, 4), np.asarray(i, np.int64),
                          np.asarray(g, np.float64).reshape(-1, 4)) for f, (v, i, g) in sorted(rows.items())}


def drop_ignored_hypotheses(boxes: np.ndarray, truth: FrameTruth, iou: float = 0.5) -> np.ndarray:
    """Boolean keep-mask over ``boxes``: False for a box that no valid gt box takes (maximum-IoU one-to-one
    assignment among pairs with IoU >= ``iou``) and that overlaps an ignore box with IoU >= ``iou``."""
    boxes = np.asarray(boxes, np.float64).reshape(-1, 4)
    keep = np.ones(len(boxes), bool)
    if not len(boxes) or not len(truth.ignore):
        return keep
    taken = np.zeros(len(boxes), bool)
    if len(truth.boxes):
        overlap = iou_matrix(boxes, truth.boxes)
        rows, cols = linear_sum_assignment(-np.where(overlap >= iou, overlap, 0.0))
        good = overlap[rows, cols] >= iou
        taken[rows[good]] = True
    near_ignore = (iou_matrix(boxes, truth.ignore) >= iou).any(axis=1)
    return ~(near_ignore & ~taken)


def iou_distances(truth: np.ndarray, hyps: np.ndarray, min_iou: float = 0.5) -> np.ndarray:
    """``(N gt, M hyp)`` distances ``1 - IoU``, NaN where IoU < ``min_iou`` (motmetrics' "no match")."""
    overlap = iou_matrix(np.asarray(truth, np.float64).reshape(-1, 4), np.asarray(hyps, np.float64).reshape(-1, 4))
    return np.where(overlap >= min_iou, 1.0 - overlap, np.nan)


def tracking_metrics(truth: dict[int, FrameTruth], hypotheses: dict[int, tuple[np.ndarray, np.ndarray]],
                     frames: list[int], remove_ignored: bool = True) -> dict[str, float]:
    """MOTA, IDF1 and their counts over ``frames`` (gt numbering); ``hypotheses[frame] = (boxes, track_ids)``."""
    import motmetrics as mm  # noqa: PLC0415 (slow import, needed only here)

    acc = mm.MOTAccumulator(auto_id=False)
    for frame in frames:
        gt = truth.get(frame, FrameTruth())
        boxes, ids = hypotheses.get(frame, (np.zeros((0, 4)), np.zeros(0, np.int64)))
        boxes = np.asarray(boxes, np.float64).reshape(-1, 4)
        ids = np.asarray(ids, np.int64).reshape(-1)
        if remove_ignored:
            keep = drop_ignored_hypotheses(boxes, gt)
            boxes, ids = boxes[keep], ids[keep]
        acc.update([int(i) for i in gt.ids], [int(i) for i in ids], iou_distances(gt.boxes, boxes), frameid=frame)
    names = ["mota", "motp", "idf1", "num_switches", "num_false_positives", "num_misses", "num_objects",
             "mostly_tracked", "mostly_lost"]
    summary = mm.metrics.create().compute(acc, metrics=names, name="all")
    out = {name: float(summary[name].iloc[0]) for name in names}
    out["motp_iou"] = 1.0 - out.pop("motp") if np.isfinite(out["motp"]) else float("nan")
    return out
