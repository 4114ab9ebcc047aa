"""Which detected board views go into a calibration: sharp ones, spread over the image, no near-duplicates.

Blurred views are dropped first by their edge width (``cv2.estimateChessboardSharpness``). Two views are
near-duplicates when their corners moved on average less than ``min_distance`` of the image diagonal (a board held
still in a video); of such a group the sharpest view is kept. When more views remain than ``max_views``,
farthest-point sampling under the same distance keeps the most spread-out subset. Coverage reports how much of the
image the kept corners reach, on a grid, and the span of the (x, y, size, skew) descriptor that ROS
camera_calibration uses for its progress bars.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from perception.geometry.chessboard import BoardView, Chessboard

DESCRIPTOR_NAMES = ("x", "y", "size", "skew")


@dataclass
class ViewSelection:
    """The kept views (in input order) and, for every dropped view, why."""

    kept: list[BoardView]
    rejected: dict[str, str] = field(default_factory=dict)


def select_views(views: list[BoardView], board: Chessboard, max_blur_px: float = 5.0, min_distance: float = 0.01,
                 max_views: int = 40) -> ViewSelection:
    """Drop views blurrier than ``max_blur_px``, then near-duplicates (mean corner displacement under
    ``min_distance`` image diagonals from a kept view), then thin to ``max_views`` by farthest-point sampling."""
    rejected: dict[str, str] = {}
    sharp = []
    for view in views:
        if not np.isfinite(view.blur_px) or view.blur_px > max_blur_px:
            rejected[view.name] = f"blurred (edge width {view.blur_px:.2f} px > {max_blur_px:g})"
        else:
            sharp.append(view)
    kept: list[tuple[BoardView, np.ndarray]] = []
    for view in sorted(sharp, key=lambda v: v.blur_px):  # the sharpest of a group of near-duplicates wins
        d = _normalised_corners(view)
        twin = next((k for k, kd in kept if _distance(kd, d) < min_distance), None)
        if twin is not None:
            rejected[view.name] = f"near-duplicate of {twin.name}"
        else:
            kept.append((view, d))
    if len(kept) > max_views:
        chosen = _farthest_points(np.stack([d for _, d in kept]), max_views)
        for i, (view, _) in enumerate(kept):
            if i not in chosen:
                rejected[view.name] = f"not needed (more than max_views={max_views} distinct views)"
        kept = [kept[i] for i in sorted(chosen)]
    order = {id(v): i for i, v in enumerate(views)}
    return ViewSelection(kept=sorted((v for v, _ in kept), key=lambda v: order[id(v)]), rejected=rejected)


def _normalised_corners(view: BoardView) -> np.ndarray:
    """(N, 2) corners over the image diagonal."""
    return view.corners.astype(np.float64) / float(np.hypot(*view.image_size))


def _distance(a: np.ndarray, b: np.ndarray) -> np.ndarray | float:
    """Mean corner displacement between views (over the last two axes), in image diagonals."""
    return np.linalg.norm(a - b, axis=-1).mean(axis=-1)


def _farthest_points(points: np.ndarray, count: int) -> set[int]:
    """Indices of ``count`` views (points: (V, N, 2)) chosen greedily, each the farthest from those chosen; the
    first is the view closest to the mean board position."""
    chosen = [int(np.argmin(_distance(points, points.mean(axis=0))))]
    distance = _distance(points, points[chosen[0]])
    while len(chosen) < count:
        nxt = int(np.argmax(distance))
        chosen.append(nxt)
        distance = np.minimum(distance, _distance(points, points[nxt]))
    return set(chosen)


def coverage(views: list[BoardView], board: Chessboard, grid: tuple[int, int] = (8, 6)) -> dict:
    """How well ``views`` cover the image: the fraction of ``grid`` cells (columns, rows) holding a corner, and the
    (min, max) span of each descriptor component."""
    if not views:
        return {"grid": list(grid), "cells_covered": 0.0, **{f"{n}_span": [0.0, 0.0] for n in DESCRIPTOR_NAMES}}
    w, h = views[0].image_size
    hit = np.zeros((grid[1], grid[0]), bool)
    for view in views:
        cols = np.clip((view.corners[:, 0] / w * grid[0]).astype(int), 0, grid[0] - 1)
        rows = np.clip((view.corners[:, 1] / h * grid[1]).astype(int), 0, grid[1] - 1)
        hit[rows, cols] = True
    descriptors = np.stack([v.descriptor(board) for v in views])
    spans = {f"{n}_span": [round(float(descriptors[:, i].min()), 4), round(float(descriptors[:, i].max()), 4)]
             for i, n in enumerate(DESCRIPTOR_NAMES)}
    return {"grid": list(grid), "cells_covered": round(float(hit.mean()), 4), **spans}
