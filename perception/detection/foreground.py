"""Static-camera foreground for the few-shot detector: MOG2 background subtraction, optionally primed with a known
background image, and the background image itself estimated from a few labelled frames.

- :class:`ForegroundModel`: Zivkovic's adaptive Gaussian mixture (ICPR 2004, OpenCV MOG2) with shadows dropped,
  opened (3x3) and closed (7x7); :meth:`ForegroundModel.prime` shows it a background image a number of times first,
  so the first frames do not take standing people for background (the model otherwise learns them as background
  and leaves "ghosts" where they stood once they leave).
- :func:`background_from_labels`: per-pixel median over labelled frames of the pixels outside every (slightly
  grown) labelled box; pixels covered in every frame are filled by inpainting (Telea, J. Graphics Tools 2004).
"""

from __future__ import annotations

import cv2
import numpy as np

PRIME_FRAMES = 30


class ForegroundModel:
    """``__call__(image) -> (H, W) float32`` foreground in {0, 1}; one call per frame, in order."""

    def __init__(self, history: int = 200, var_threshold: float = 16.0) -> None:
        self.history, self.var_threshold = history, var_threshold
        self.reset()

    def reset(self) -> None:
        self.subtractor = cv2.createBackgroundSubtractorMOG2(history=self.history, varThreshold=self.var_threshold,
                                                             detectShadows=True)
        self.primed = False

    def prime(self, background: np.ndarray, times: int = PRIME_FRAMES) -> None:
        """Learn ``background`` ((H, W, 3) uint8, same channel order as the frames) as the scene's background."""
        for _ in range(times):
            self.subtractor.apply(background)
        self.primed = True

    def __call__(self, image: np.ndarray) -> np.ndarray:
        mask = self.subtractor.apply(image)
        fg = np.where(mask == 255, 255, 0).astype(np.uint8)
        fg = cv2.morphologyEx(fg, cv2.MORPH_OPEN, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (3, 3)))
        fg = cv2.morphologyEx(fg, cv2.MORPH_CLOSE, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (7, 7)))
        return (fg > 0).astype(np.float32)


def boxes_mask(shape: tuple[int, int], boxes: np.ndarray, grow: float = 0.0) -> np.ndarray:
    """``(H, W)`` bool, True inside any ``x, y, w, h`` box grown by ``grow`` of its size on each side."""
    mask = np.zeros(shape, bool)
    for x, y, w, h in np.asarray(boxes, np.float64).reshape(-1, 4):
        x0, y0 = int(max(0, np.floor(x - grow * w))), int(max(0, np.floor(y - grow * h)))
        x1, y1 = int(min(shape[1], np.ceil(x + w + grow * w))), int(min(shape[0], np.ceil(y + h + grow * h)))
        if x1 > x0 and y1 > y0:
            mask[y0:y1, x0:x1] = True
    return mask


def background_from_labels(images: list[np.ndarray], boxes: list[np.ndarray], grow: float = 0.1) -> np.ndarray:
    """The scene background ((H, W, 3) uint8) from ``images`` whose objects are the labelled ``boxes``."""
    if not images:
        raise ValueError("background_from_labels: no images")
    stack = np.stack([im.astype(np.float32) for im in images])  # (N, H, W, 3)
    covered = np.stack([boxes_mask(im.shape[:2], b, grow) for im, b in zip(images, boxes)])  # (N, H, W)
    masked = np.where(covered[..., None], np.nan, stack)
    with np.errstate(all="ignore"):
        import warnings  # noqa: PLC0415

        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            median = np.nanmedian(masked, axis=0)
    hole = np.isnan(median[..., 0])
    background = np.nan_to_num(median, nan=0.0).clip(0, 255).astype(np.uint8)
    if hole.any():
        background = cv2.inpaint(background, hole.astype(np.uint8) * 255, 7, cv2.INPAINT_TELEA)
    return background


class StaticBackground:
    """A long-term background image with selective running-average updates (pixels under current detections are
    not updated, so a person who stops stays foreground; Koller et al., "Towards robust automatic traffic scene
    analysis in real-time", ICPR 1994). ``difference(image)`` is the foreground map in {0, 1}: the largest
    per-channel absolute difference, after a small blur, above ``threshold`` grey levels, opened and closed."""

    def __init__(self, background: np.ndarray, rate: float = 0.02, threshold: float = 25.0) -> None:
        self.background = background.astype(np.float32)
        self.rate, self.threshold = rate, threshold

    def difference(self, image: np.ndarray) -> np.ndarray:
        blurred = cv2.GaussianBlur(image, (5, 5), 1.0).astype(np.float32)
        diff = np.abs(blurred - cv2.GaussianBlur(self.background, (5, 5), 1.0)).max(axis=2)
        fg = (diff > self.threshold).astype(np.uint8)
        fg = cv2.morphologyEx(fg, cv2.MORPH_OPEN, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (3, 3)))
        fg = cv2.morphologyEx(fg, cv2.MORPH_CLOSE, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (7, 7)))
        return fg.astype(np.float32)

    def update(self, image: np.ndarray, keep: np.ndarray) -> None:
        """Blend ``image`` in where ``keep`` ((H, W) bool, e.g. under detections) is False."""
        alpha = np.where(keep, 0.0, self.rate).astype(np.float32)[..., None]
        self.background += alpha * (image.astype(np.float32) - self.background)
