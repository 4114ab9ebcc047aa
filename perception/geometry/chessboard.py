"""Chessboard corner detection for calibration (Zhang, "A flexible new technique for camera calibration", 2000).

``Chessboard(cols, rows, square)`` counts inner corners (OpenCV's ``patternSize``: a "9x6" board has 9 corners along a
row and 6 along a column) and gives their 3-D positions on the board plane (z = 0, metres). ``detect_board`` finds
the corners with ``cv2.findChessboardCorners`` and refines them with ``cv2.cornerSubPix``; ``BoardView`` keeps the
corners with what view selection needs: the blur measure of ``cv2.estimateChessboardSharpness`` (mean edge width in
pixels, smaller is sharper) and a pose descriptor (centre, size, skew) in the spirit of ROS camera_calibration.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import cv2
import numpy as np

from perception.geometry.camera_model import CalibrationError

_FIND_FLAGS = cv2.CALIB_CB_ADAPTIVE_THRESH | cv2.CALIB_CB_NORMALIZE_IMAGE | cv2.CALIB_CB_FAST_CHECK
_SUBPIX_CRITERIA = (cv2.TERM_CRITERIA_EPS + cv2.TERM_CRITERIA_COUNT, 40, 0.001)


@dataclass(frozen=True)
class Chessboard:
    """Inner-corner counts and square size (metres)."""

    cols: int
    rows: int
    square: float

    def __post_init__(self) -> None:
        if self.cols < 2 or self.rows < 2:
            raise CalibrationError(f"board {self.cols}x{self.rows}: expected at least 2x2 inner corners")
        if self.cols == self.rows:
            raise CalibrationError(f"board {self.cols}x{self.rows}: a square board has no defined orientation; "
                                   "use a board with different inner-corner counts")
        if not self.square > 0:
            raise CalibrationError(f"square size {self.square}: expected a positive length in metres")

    @classmethod
    def parse(cls, text: str, square: float) -> "Chessboard":
        """``"9x6"`` (inner corners, columns x rows) and a square size in metres."""
        match = re.fullmatch(r"\s*(\d+)\s*[xX]\s*(\d+)\s*", text)
        if not match:
            raise CalibrationError(f"board '{text}': expected COLSxROWS inner corners, e.g. 9x6")
        return cls(int(match.group(1)), int(match.group(2)), float(square))

    @property
    def pattern_size(self) -> tuple[int, int]:
        return self.cols, self.rows

    @property
    def num_corners(self) -> int:
        return self.cols * self.rows

    def object_points(self) -> np.ndarray:
        """(N, 3) float32 corner positions on the board, row by row, in the order OpenCV returns them."""
        grid = np.mgrid[0:self.cols, 0:self.rows].T.reshape(-1, 2)
        points = np.zeros((self.num_corners, 3), np.float32)
        points[:, :2] = grid * self.square
        return points

    def __str__(self) -> str:
        return f"{self.cols}x{self.rows} ({self.square * 1000:g} mm squares)"


@dataclass(frozen=True)
class BoardView:
    """One image where the whole board was found. ``corners``: (N, 2) float32 pixels, OpenCV's corner order."""

    name: str
    corners: np.ndarray
    image_size: tuple[int, int]  # (width, height)
    blur_px: float  # mean edge width across the board's edges (estimateChessboardSharpness); smaller is sharper

    def descriptor(self, board: Chessboard) -> np.ndarray:
        """(x, y, size, skew) in [0, 1]: where the board is, how much of the image it fills, how tilted it is.

        x, y: corner centroid over the image size; size: sqrt of the outer quadrilateral's area over the image
        area; skew: how far the angle at the top-left outer corner is from 90 degrees (0 = square on, 1 = 90 off).
        """
        w, h = self.image_size
        quad = self.outer_quad(board)
        d1, d2 = quad[2] - quad[0], quad[3] - quad[1]
        area = 0.5 * abs(d1[0] * d2[1] - d1[1] * d2[0])  # a quadrilateral's area from its diagonals
        a, b = quad[1] - quad[0], quad[3] - quad[0]
        cos = float(np.dot(a, b) / (np.linalg.norm(a) * np.linalg.norm(b) + 1e-9))
        skew = min(1.0, 2.0 * abs(np.pi / 2 - np.arccos(np.clip(cos, -1.0, 1.0))) / np.pi)
        centre = self.corners.mean(axis=0)
        return np.array([centre[0] / w, centre[1] / h, np.sqrt(area / (w * h)), skew])

    def outer_quad(self, board: Chessboard) -> np.ndarray:
        """(4, 2) outer corners: first, end of first row, last, start of last row."""
        c = self.corners
        return np.array([c[0], c[board.cols - 1], c[-1], c[-board.cols]], dtype=np.float64)


def to_gray(image: np.ndarray) -> np.ndarray:
    """(H, W) uint8 from a grey or RGB image."""
    if image.ndim == 2:
        return image
    if image.ndim == 3 and image.shape[2] == 3:
        return cv2.cvtColor(image, cv2.COLOR_RGB2GRAY)
    raise CalibrationError(f"image of shape {image.shape}: expected (H, W) grey or (H, W, 3) RGB")


def detect_board(image: np.ndarray, board: Chessboard, name: str = "image") -> BoardView | None:
    """The board's refined corners in ``image`` (grey or RGB uint8), or None when the whole board is not seen."""
    gray = to_gray(image)
    found, corners = cv2.findChessboardCorners(gray, board.pattern_size, flags=_FIND_FLAGS)
    if not found or corners is None or len(corners) != board.num_corners:
        return None
    # search window: a little under half the smallest spacing between neighbouring corners, at most 11x11
    spacing = float(np.min(np.linalg.norm(np.diff(corners.reshape(-1, 2), axis=0), axis=1)))
    radius = int(np.clip(spacing * 0.4, 2, 11))
    refined = cv2.cornerSubPix(gray, corners, (radius, radius), (-1, -1), _SUBPIX_CRITERIA)
    sharpness = cv2.estimateChessboardSharpness(gray, board.pattern_size, refined)
    return BoardView(name=name, corners=refined.reshape(-1, 2).astype(np.float32),
                     image_size=(int(gray.shape[1]), int(gray.shape[0])), blur_px=float(sharpness[0][0]))


def larger_board_visible(image: np.ndarray, board: Chessboard) -> Chessboard | None:
    """A board one corner wider or taller than ``board`` that is also found in ``image``, if any: then ``board``
    is probably a wrong size (OpenCV finds a smaller pattern inside a larger board) and the user should know."""
    gray = to_gray(image)
    for cols, rows in ((board.cols + 1, board.rows), (board.cols, board.rows + 1)):
        if cols == rows:
            continue
        found, _ = cv2.findChessboardCorners(gray, (cols, rows), flags=_FIND_FLAGS)
        if found:
            return Chessboard(cols, rows, board.square)
    return None
