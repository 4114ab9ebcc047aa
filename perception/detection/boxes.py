"""Box geometry on ``(N, 4)`` arrays: conversions, clipping, pairwise IoU and greedy non-maximum suppression.

Boxes are ``x, y, w, h`` (top-left corner, width, height; the ``Detections`` convention) unless a function says
``xyxy`` (corners ``x0, y0, x1, y1`` with ``x1 = x + w``). Areas are continuous (``w * h``), as in the COCO and
MOTChallenge evaluation code; a box of zero width has zero area and IoU 0 with everything.
"""

from __future__ import annotations

import numpy as np


def _as_boxes(boxes: np.ndarray, name: str = "boxes") -> np.ndarray:
    arr = np.asarray(boxes, dtype=np.float64)
    if arr.size == 0:
        return arr.reshape(0, 4)
    if arr.ndim != 2 or arr.shape[1] != 4:
        raise ValueError(f"{name}: expected an (N, 4) array, got shape {arr.shape}")
    return arr


def xywh_to_xyxy(boxes: np.ndarray) -> np.ndarray:
    """``x, y, w, h`` -> ``x0, y0, x1, y1``."""
    b = _as_boxes(boxes)
    return np.concatenate([b[:, :2], b[:, :2] + b[:, 2:]], axis=1)


def xyxy_to_xywh(boxes: np.ndarray) -> np.ndarray:
    """``x0, y0, x1, y1`` -> ``x, y, w, h``."""
    b = _as_boxes(boxes)
    return np.concatenate([b[:, :2], b[:, 2:] - b[:, :2]], axis=1)


def xywh_to_cxcywh(boxes: np.ndarray) -> np.ndarray:
    """``x, y, w, h`` -> centre ``cx, cy, w, h``."""
    b = _as_boxes(boxes)
    return np.concatenate([b[:, :2] + b[:, 2:] / 2, b[:, 2:]], axis=1)


def cxcywh_to_xywh(boxes: np.ndarray) -> np.ndarray:
    """Centre ``cx, cy, w, h`` -> ``x, y, w, h``."""
    b = _as_boxes(boxes)
    return np.concatenate([b[:, :2] - b[:, 2:] / 2, b[:, 2:]], axis=1)


def clip_boxes(boxes: np.ndarray, width: int, height: int) -> np.ndarray:
    """Clip ``x, y, w, h`` boxes to the image ``[0, width] x [0, height]``; boxes outside get zero size."""
    xyxy = xywh_to_xyxy(boxes)
    xyxy[:, [0, 2]] = np.clip(xyxy[:, [0, 2]], 0, width)
    xyxy[:, [1, 3]] = np.clip(xyxy[:, [1, 3]], 0, height)
    return xyxy_to_xywh(xyxy)


def box_area(boxes: np.ndarray) -> np.ndarray:
    """Areas of ``x, y, w, h`` boxes (negative sizes count as zero)."""
    b = _as_boxes(boxes)
    return np.clip(b[:, 2], 0, None) * np.clip(b[:, 3], 0, None)


def intersection(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Pairwise intersection areas ``(N, M)`` of ``x, y, w, h`` boxes."""
    pa, pb = xywh_to_xyxy(a), xywh_to_xyxy(b)
    x0 = np.maximum(pa[:, None, 0], pb[None, :, 0])
    y0 = np.maximum(pa[:, None, 1], pb[None, :, 1])
    x1 = np.minimum(pa[:, None, 2], pb[None, :, 2])
    y1 = np.minimum(pa[:, None, 3], pb[None, :, 3])
    return np.clip(x1 - x0, 0, None) * np.clip(y1 - y0, 0, None)


def iou_matrix(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Pairwise intersection over union ``(N, M)`` of ``x, y, w, h`` boxes, in [0, 1]."""
    inter = intersection(a, b)
    union = box_area(a)[:, None] + box_area(b)[None, :] - inter
    return np.where(union > 0, inter / np.where(union > 0, union, 1.0), 0.0)


def containment_matrix(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Pairwise intersection over the smaller of the two areas ``(N, M)``: 1 when one box lies inside the other."""
    inter = intersection(a, b)
    smaller = np.minimum(box_area(a)[:, None], box_area(b)[None, :])
    return np.where(smaller > 0, inter / np.where(smaller > 0, smaller, 1.0), 0.0)


def nms(boxes: np.ndarray, scores: np.ndarray, iou_threshold: float) -> np.ndarray:
    """Greedy non-maximum suppression: visit boxes in decreasing score order, keep a box unless it overlaps an
    already kept one with IoU above ``iou_threshold``. Returns the kept indices (int64), highest score first.
    Ties in score keep the earlier index first (stable sort), so the result is deterministic."""
    b = _as_boxes(boxes)
    s = np.asarray(scores, dtype=np.float64).reshape(-1)
    if s.shape[0] != b.shape[0]:
        raise ValueError(f"nms: {b.shape[0]} boxes but {s.shape[0]} scores")
    order = np.argsort(-s, kind="stable")
    if order.size == 0:
        return order.astype(np.int64)
    overlaps = iou_matrix(b[order], b[order])
    suppressed = np.zeros(order.size, bool)
    keep = []
    for i in range(order.size):
        if suppressed[i]:
            continue
        keep.append(order[i])
        suppressed |= overlaps[i] > iou_threshold
    return np.asarray(keep, np.int64)
