"""Camera-motion-compensated frame differencing: where did the image change beyond what the camera's motion explains.

Global motion is a 4-degree-of-freedom similarity (translation, rotation, scale) between consecutive downscaled grey
frames, fitted with RANSAC (``cv2.estimateAffinePartial2D``) to sparse Lucas-Kanade tracks of grid points with a
forward-backward check (Bouguet's pyramidal LK; Kalal et al., "Forward-backward error", ICPR 2010). Moving objects
are outliers of that fit. When too few points track, phase correlation (Kuglin and Hines, 1975) gives a translation
instead.

The previous frame is warped into the current one and the absolute grey difference is taken, after a small blur that
hides sub-pixel misregistration; pixels that the warp brings in from outside the previous frame carry no evidence.
The difference is divided by a noise scale, the running median of the difference over the frame, so the evidence
is comparable across scenes and cameras: ``evidence = clip((diff / (k * noise) - 1), 0, 1)``.
"""

from __future__ import annotations

import cv2
import numpy as np

IDENTITY = np.array([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]])
SPARSE_STEP = 40  # grid step (pixels of the analysed image) of the cheap still-camera check: 48 points at 320x240


def _grid_points(height: int, width: int, step: int) -> np.ndarray:
    ys, xs = np.mgrid[step // 2:height:step, step // 2:width:step]
    return np.stack([xs.ravel(), ys.ravel()], axis=1).astype(np.float32)[:, None, :]


def estimate_global_motion(prev: np.ndarray, cur: np.ndarray, step: int = 20) -> np.ndarray:
    """The 2x3 similarity mapping pixel coordinates of grey image ``prev`` to ``cur`` (identity when unknown).

    Points on a regular grid (every ``step`` pixels, so the background, not the most contrasted objects, dominates)
    are tracked forward and backward with pyramidal LK; tracks that do not return within 0.5 pixel are dropped.
    """
    matrix = _tracked_similarity(prev, cur, step)
    if matrix is not None:
        return matrix
    window = cv2.createHanningWindow(prev.shape[::-1], cv2.CV_32F)
    (dx, dy), response = cv2.phaseCorrelate(prev.astype(np.float32), cur.astype(np.float32), window)
    if response < 0.05:
        return IDENTITY.copy()
    return np.array([[1.0, 0.0, dx], [0.0, 1.0, dy]])


def _tracked_similarity(prev: np.ndarray, cur: np.ndarray, step: int) -> np.ndarray | None:
    """The LK + RANSAC part of :func:`estimate_global_motion`; None when too few points track."""
    points = _grid_points(prev.shape[0], prev.shape[1], step)
    lk = dict(winSize=(15, 15), maxLevel=3)
    moved, status, _ = cv2.calcOpticalFlowPyrLK(prev, cur, points, None, **lk)
    ok = status.reshape(-1) == 1
    if ok.any():  # points lost forward are dropped anyway: track back only the others (each point is independent)
        back, status_back, _ = cv2.calcOpticalFlowPyrLK(cur, prev, moved[ok], None, **lk)
        error = np.linalg.norm((back - points[ok]).reshape(-1, 2), axis=1)
        ok[ok] = (status_back.reshape(-1) == 1) & (error < 0.5)
    if ok.sum() >= 8:
        matrix, inliers = cv2.estimateAffinePartial2D(
            points[ok], moved[ok], method=cv2.RANSAC, ransacReprojThreshold=0.5, maxIters=500, confidence=0.99,
            refineIters=10,
        )
        if matrix is not None and inliers is not None and inliers.sum() >= 6:
            return matrix.astype(np.float64)
    return None


def corner_motion(matrix: np.ndarray, width: int, height: int) -> float:
    """The largest displacement, in pixels, of a corner of a ``width x height`` image under the 2x3 ``matrix``."""
    corners = np.array([[0, 0, 1], [width, 0, 1], [0, height, 1], [width, height, 1]], np.float64)
    return float(np.abs(corners @ np.asarray(matrix, np.float64).T - corners[:, :2]).max())


class MotionEvidence:
    """Per-pixel evidence in [0, 1] of independent motion, at ``scale`` times the input resolution.

    ``update(image)`` returns ``None`` on the first frame (nothing to compare with); afterwards an ``(h, w)`` float32
    map. ``transform`` holds the last previous-to-current 2x3 matrix at full resolution.
    """

    def __init__(self, scale: float = 0.5, threshold: float = 3.0, min_noise: float = 1.5) -> None:
        if not 0 < scale <= 1:
            raise ValueError(f"MotionEvidence: scale {scale} (expected 0 < scale <= 1)")
        self.scale = scale
        self.threshold = threshold
        self.min_noise = min_noise
        self.transform = IDENTITY.copy()
        self._prev: np.ndarray | None = None
        self._noise: float | None = None

    def reset(self) -> None:
        self._prev, self._noise = None, None
        self.transform = IDENTITY.copy()

    def _grey(self, image: np.ndarray) -> np.ndarray:
        grey = cv2.cvtColor(image, cv2.COLOR_RGB2GRAY) if image.ndim == 3 else image
        h, w = grey.shape
        size = (max(8, int(round(w * self.scale))), max(8, int(round(h * self.scale))))
        small = cv2.resize(grey, size, interpolation=cv2.INTER_AREA)
        return small

    def update(self, image: np.ndarray, still_px: float | None = None) -> np.ndarray | None:
        """The evidence map of ``image`` against the previous frame (``None`` on the first frame or a size change).

        ``still_px`` (full-resolution pixels), for a caller that expects a still camera: the global motion is first
        estimated from a sparse grid (``SPARSE_STEP``: a quarter of the points, about a third of the
        cost) and kept when it moves no image corner by more than ``still_px``; otherwise, or
        when too few sparse points track, from the usual grid. On a still camera the two agree to about 0.15 pixel
        (measured on vtest.avi), so a ``still_px`` well below the still test's threshold changes no decision."""
        cur = self._grey(image)
        prev, self._prev = self._prev, cur
        if prev is None or prev.shape != cur.shape:
            self.transform = IDENTITY.copy()
            return None
        matrix = None
        if still_px is not None:
            matrix = _tracked_similarity(prev, cur, SPARSE_STEP)
            if matrix is not None and corner_motion(matrix, cur.shape[1], cur.shape[0]) / self.scale > still_px:
                matrix = None
        if matrix is None:
            matrix = estimate_global_motion(prev, cur)
        full = matrix.copy()
        full[:, 2] /= self.scale
        self.transform = full
        h, w = cur.shape
        warped = cv2.warpAffine(prev, matrix, (w, h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
        valid = cv2.warpAffine(np.full_like(prev, 255), matrix, (w, h), flags=cv2.INTER_NEAREST, borderValue=0)
        valid = cv2.erode(valid, np.ones((7, 7), np.uint8), borderType=cv2.BORDER_REPLICATE) > 0
        a = cv2.GaussianBlur(cur, (5, 5), 1.0)
        b = cv2.GaussianBlur(warped, (5, 5), 1.0)
        if a.dtype != np.uint8:
            return self._float_evidence(a.astype(np.float32), b.astype(np.float32), valid)
        # uint8 frames (the usual case): the difference takes 256 values, so its median comes from a histogram and
        # the evidence from a 256-entry table, with the same values as the float path (about 1 ms less a frame)
        valid8 = valid.view(np.uint8)
        diff = cv2.absdiff(a, b)
        np.multiply(diff, valid8, out=diff)  # pixels the warp brought in carry no evidence
        counts = cv2.calcHist([diff], [0], None, [256], [0, 256]).ravel()  # (half the time of a masked histogram)
        outside = diff.size - cv2.countNonZero(valid8)
        counts[0] -= outside  # the median is over the valid pixels only
        self._update_noise(_median_of_histogram(counts) if outside < diff.size else self.min_noise)
        table = np.arange(256, dtype=np.float32) / (self.threshold * self._noise) - 1.0
        np.clip(table, 0.0, 1.0, out=table)
        return cv2.LUT(diff, table)

    def _update_noise(self, noise: float) -> None:
        noise = max(noise, self.min_noise)
        self._noise = noise if self._noise is None else 0.9 * self._noise + 0.1 * noise

    def _float_evidence(self, a: np.ndarray, b: np.ndarray, valid: np.ndarray) -> np.ndarray:
        diff = np.abs(a - b)
        diff[~valid] = 0.0
        self._update_noise(float(np.median(diff[valid])) if valid.any() else self.min_noise)
        evidence = diff / (self.threshold * self._noise) - 1.0
        return np.clip(evidence, 0.0, 1.0, out=evidence)


def _median_of_histogram(counts: np.ndarray) -> float:
    """``np.median`` of the integer values whose histogram is ``counts`` (value ``i`` occurs ``counts[i]`` times)."""
    total = int(round(float(counts.sum())))
    cumulative = np.cumsum(counts)
    upper = int(np.searchsorted(cumulative, total // 2 + 1))  # the value at sorted index total // 2
    if total % 2:
        return float(upper)
    lower = int(np.searchsorted(cumulative, total // 2))  # the value at sorted index total // 2 - 1
    return (lower + upper) / 2.0
