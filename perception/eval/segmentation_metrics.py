"""Video object segmentation metrics of DAVIS: region similarity J and boundary accuracy F.

Perazzi et al., "A Benchmark Dataset and Evaluation Methodology for Video Object Segmentation", CVPR 2016, Sec. 3:
- J is the intersection over union of the predicted and ground-truth masks. When both masks are empty J = 1.0
  (nothing to find, nothing found), as in the DAVIS evaluation code.
- F is the boundary F-measure: precision is the fraction of predicted boundary pixels within ``tolerance`` px of a
  ground-truth boundary pixel, recall the fraction of ground-truth boundary pixels within ``tolerance`` px of a
  predicted one, F = 2PR / (P + R) (0 when P + R = 0). The tolerance is ceil(0.008 * image diagonal), 8 px at 854x480.
  Empty cases as DAVIS: both boundaries empty -> P = R = 1; only the prediction empty -> P = 1, R = 0; only the
  ground truth empty -> P = 0, R = 1.

Approximation: the boundary correspondence of Martin et al. (BSDS, a bipartite matching) is replaced by dilation:
a pixel counts as matched when a boundary pixel of the other mask lies inside a disk of radius ``tolerance`` around
it (OpenCV dilation with a disk kernel, x^2 + y^2 <= r^2). Several pixels may match the same one, so P and R can be
slightly higher than with a one-to-one matching. The public DAVIS evaluation code makes the same approximation.

Boundary maps are one pixel wide: a pixel is on the boundary when its label differs from its right, lower or
lower-right neighbour (pixels past the image edge are not compared), the DAVIS ``seg2bmap`` convention for masks
already at image size.
"""

from __future__ import annotations

import math

import cv2
import numpy as np

BOUNDARY_FRACTION = 0.008


def region_similarity(pred: np.ndarray, gt: np.ndarray) -> float:
    """J: IoU of two boolean masks of the same shape; 1.0 when both are empty."""
    pred, gt = _check_pair(pred, gt)
    union = np.logical_or(pred, gt).sum()
    if union == 0:
        return 1.0
    return float(np.logical_and(pred, gt).sum() / union)


def boundary_map(mask: np.ndarray) -> np.ndarray:
    """One-pixel-wide boundary of a boolean mask ``(H, W)``: True where a pixel differs from its right, lower or
    lower-right neighbour inside the image."""
    mask = np.asarray(mask, dtype=bool)
    out = np.zeros_like(mask)
    out[:, :-1] |= mask[:, :-1] != mask[:, 1:]
    out[:-1, :] |= mask[:-1, :] != mask[1:, :]
    out[:-1, :-1] |= mask[:-1, :-1] != mask[1:, 1:]
    return out


def boundary_tolerance(shape: tuple[int, int], fraction: float = BOUNDARY_FRACTION) -> int:
    """ceil(fraction * diagonal) in pixels: 8 for 480x854."""
    return int(math.ceil(fraction * math.hypot(shape[0], shape[1])))


def disk_kernel(radius: int) -> np.ndarray:
    """uint8 ``(2r+1, 2r+1)`` kernel, 1 where x^2 + y^2 <= r^2."""
    offsets = np.arange(-radius, radius + 1)
    return ((offsets[:, None] ** 2 + offsets[None, :] ** 2) <= radius * radius).astype(np.uint8)


def boundary_precision_recall(pred: np.ndarray, gt: np.ndarray, tolerance: int | None = None) -> tuple[float, float]:
    """(P, R) of the boundary of ``pred`` against the boundary of ``gt`` (see the module docstring)."""
    pred, gt = _check_pair(pred, gt)
    radius = boundary_tolerance(gt.shape) if tolerance is None else int(tolerance)
    pred_b, gt_b = boundary_map(pred), boundary_map(gt)
    n_pred, n_gt = int(pred_b.sum()), int(gt_b.sum())
    if n_pred == 0 and n_gt == 0:
        return 1.0, 1.0
    if n_pred == 0:
        return 1.0, 0.0
    if n_gt == 0:
        return 0.0, 1.0
    kernel = disk_kernel(radius)
    gt_near = cv2.dilate(gt_b.astype(np.uint8), kernel) > 0
    pred_near = cv2.dilate(pred_b.astype(np.uint8), kernel) > 0
    precision = float(np.logical_and(pred_b, gt_near).sum() / n_pred)
    recall = float(np.logical_and(gt_b, pred_near).sum() / n_gt)
    return precision, recall


def boundary_f_measure(pred: np.ndarray, gt: np.ndarray, tolerance: int | None = None) -> float:
    """F: harmonic mean of boundary precision and recall; 0 when both are 0."""
    precision, recall = boundary_precision_recall(pred, gt, tolerance)
    if precision + recall == 0:
        return 0.0
    return 2.0 * precision * recall / (precision + recall)


def _check_pair(pred: np.ndarray, gt: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    pred, gt = np.asarray(pred, dtype=bool), np.asarray(gt, dtype=bool)
    if pred.shape != gt.shape or pred.ndim != 2:
        raise ValueError(f"masks must be 2-D and of the same shape: prediction {pred.shape}, ground truth {gt.shape}")
    return pred, gt
