"""Pictures that let a person check a calibration at a glance (RGB uint8, written by the calibrate command).

``corners_picture``: one view with its detected corners (``cv2.drawChessboardCorners``) and, as dots, the corners of
every view used, so gaps in coverage show. ``undistorted_picture``: the raw view beside its rectified image, with
the board's outer rows drawn as straight segments through the rectified corners (they should lie on them).
"""

from __future__ import annotations

import cv2
import numpy as np

from perception.geometry.chessboard import BoardView, Chessboard
from perception.geometry.rectify import Rectifier


def _rgb(image: np.ndarray) -> np.ndarray:
    return cv2.cvtColor(image, cv2.COLOR_GRAY2RGB) if image.ndim == 2 else image.copy()


def _palette(n: int) -> list[tuple[int, int, int]]:
    hues = np.linspace(0, 179, max(n, 1), endpoint=False).astype(np.uint8)
    hsv = np.stack([hues, np.full_like(hues, 255), np.full_like(hues, 255)], axis=1).reshape(-1, 1, 3)
    return [tuple(int(c) for c in rgb) for rgb in cv2.cvtColor(hsv, cv2.COLOR_HSV2RGB).reshape(-1, 3)]


def corners_picture(image: np.ndarray, view: BoardView, all_views: list[BoardView], board: Chessboard) -> np.ndarray:
    """``view``'s image with its corners drawn, and every view's corners as coloured dots."""
    out = _rgb(image)
    for colour, other in zip(_palette(len(all_views)), all_views):
        for x, y in other.corners:
            cv2.circle(out, (int(round(x)), int(round(y))), 2, colour, -1, cv2.LINE_AA)
    cv2.drawChessboardCorners(out, board.pattern_size, view.corners.reshape(-1, 1, 2), True)
    cv2.putText(out, f"{view.name}: corners; dots: all {len(all_views)} views", (8, 20), cv2.FONT_HERSHEY_SIMPLEX,
                0.5, (255, 255, 0), 1, cv2.LINE_AA)
    return out


def undistorted_picture(image: np.ndarray, view: BoardView, rectifier: Rectifier, board: Chessboard) -> np.ndarray:
    """Raw view (left) and rectified view (right); on the right, straight lines through each rectified board row."""
    raw = _rgb(image)
    h, w = raw.shape[:2]
    rect = _rgb(rectifier.rectify(image))
    points = rectifier.rectify_points(view.corners, w, h).reshape(board.rows, board.cols, 2)
    for row in points:
        cv2.line(rect, tuple(int(v) for v in np.round(row[0])), tuple(int(v) for v in np.round(row[-1])),
                 (255, 0, 0), 1, cv2.LINE_AA)
        for x, y in row:
            cv2.circle(rect, (int(round(x)), int(round(y))), 2, (0, 255, 0), -1, cv2.LINE_AA)
    for picture, label in ((raw, "raw"), (rect, "rectified")):
        cv2.putText(picture, f"{view.name} {label}", (8, 20), cv2.FONT_HERSHEY_SIMPLEX, 0.5, (255, 255, 0), 1,
                    cv2.LINE_AA)
    return np.hstack([raw, rect])
