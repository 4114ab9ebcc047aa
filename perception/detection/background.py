"""Background subtraction for a camera that stands still: the complement of frame differencing for discovery.

Frame differencing (:mod:`perception.detection.motion`) sees only the edges of slowly moving objects and nothing
of objects that pause; when the camera does not move, a per-pixel background model sees their whole silhouettes.
:class:`StillCameraBackground` runs Zivkovic's adaptive Gaussian mixture (ICPR 2004, OpenCV MOG2; shadows
dropped, opened and closed) at a reduced resolution while the camera's frame-to-frame motion stays below
``still_px`` pixels, and forgets its model whenever the camera moves (the learnt background no longer lines up).
Class-agnostic: it needs no labels, only a still camera.
"""

from __future__ import annotations

import cv2
import numpy as np


class StillCameraBackground:
    """``update(image, transform) -> (h, w) float32`` foreground in {0, 1} at ``scale`` of the image, or ``None``
    while the camera moves (``transform``: the 2x3 previous-to-current matrix at full resolution)."""

    def __init__(self, scale: float = 0.5, history: int = 500, var_threshold: float = 16.0,
                 still_px: float = 0.75) -> None:
        self.scale, self.history, self.var_threshold, self.still_px = scale, history, var_threshold, still_px
        self.open_kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (3, 3))
        self.close_kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (5, 5))
        self.reset()

    def reset(self) -> None:
        self.subtractor = cv2.createBackgroundSubtractorMOG2(history=self.history, varThreshold=self.var_threshold,
                                                             detectShadows=True)

    def is_still(self, transform: np.ndarray, size: tuple[int, int]) -> bool:
        """Whether ``transform`` moves no image corner by more than ``still_px`` pixels."""
        w, h = size
        corners = np.array([[0, 0, 1], [w, 0, 1], [0, h, 1], [w, h, 1]], np.float64)
        moved = corners @ np.asarray(transform, np.float64).T - corners[:, :2]
        return bool(np.abs(moved).max() <= self.still_px)

    def update(self, image: np.ndarray, transform: np.ndarray) -> np.ndarray | None:
        height, width = image.shape[:2]
        if not self.is_still(transform, (width, height)):
            self.reset()
            return None
        small = cv2.resize(image, (max(8, int(round(width * self.scale))), max(8, int(round(height * self.scale)))),
                           interpolation=cv2.INTER_AREA)
        mask = self.subtractor.apply(small)
        fg = (mask == 255).astype(np.uint8)
        fg = cv2.morphologyEx(fg, cv2.MORPH_OPEN, self.open_kernel)
        fg = cv2.morphologyEx(fg, cv2.MORPH_CLOSE, self.close_kernel)
        return fg.astype(np.float32)
