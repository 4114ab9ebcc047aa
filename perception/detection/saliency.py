"""Feature saliency on the stride-8 grid: how far each cell's feature lies from the scene's feature statistics.

The scene is modelled as one Gaussian over cell features, its mean and covariance kept as exponential moving
averages over frames (a global background model in feature space, as in the Reed-Xiaoli anomaly detector, Reed and
Yu, IEEE TASSP 1990). Saliency is the Mahalanobis distance in the top principal components of that covariance,
per component normalised, mapped to [0, 1]: ``clip((sqrt(d2 / k) - low) / (high - low), 0, 1)``.

It works on any features: the encoder's dense map (random-init or trained) or, without an encoder, the colour
features of :func:`colour_grid_features` (CIE Lab mean and standard deviation per cell).
"""

from __future__ import annotations

import cv2
import numpy as np


def colour_grid_features(image: np.ndarray, grid_hw: tuple[int, int]) -> np.ndarray:
    """``(h, w, 6)`` float32: Lab mean and standard deviation of ``image`` (RGB uint8) over each grid cell."""
    h, w = grid_hw
    lab = cv2.cvtColor(image, cv2.COLOR_RGB2LAB).astype(np.float32)
    mean = cv2.resize(lab, (w, h), interpolation=cv2.INTER_AREA)
    sq = cv2.resize(lab * lab, (w, h), interpolation=cv2.INTER_AREA)
    std = np.sqrt(np.clip(sq - mean * mean, 0, None))
    return np.concatenate([mean, std], axis=2)


def dense_to_grid(dense: object) -> np.ndarray:
    """A ``(C, h, w)`` (or ``(1, C, h, w)``) torch tensor or array -> ``(h, w, C)`` float32 numpy array."""
    if hasattr(dense, "detach"):
        dense = dense.detach().float().cpu().numpy()  # type: ignore[union-attr]
    arr = np.asarray(dense, dtype=np.float32)
    if arr.ndim == 4 and arr.shape[0] == 1:
        arr = arr[0]
    if arr.ndim != 3:
        raise ValueError(f"dense features: expected (C, h, w) or (1, C, h, w), got shape {arr.shape}")
    return np.ascontiguousarray(arr.transpose(1, 2, 0))


class FeatureSaliency:
    """Running Gaussian model of the scene's cell features; ``__call__`` gives saliency and whitened features.

    ``components``: principal components kept (at most the feature dimension); ``momentum``: weight of the past in
    the moving averages (0 uses each frame alone); ``low``/``high``: normalised distances mapped to 0 and 1;
    ``refresh_every``: frames between eigendecompositions of the running covariance (it changes slowly).

    ``observe(grid)`` updates the statistics only (what the discovery detector needs on the frames where it uses
    background subtraction instead): the whitening basis is then taken from the covariance of the frame where it
    was due and decomposed only when a later ``__call__`` needs it, so the result is the same as calling
    ``__call__`` on every frame. Measured on vtest.avi features (4800 cells x 128 channels, one BLAS thread):
    the statistics cost about 2 ms a frame, the whitening 0.7 ms, an eigendecomposition 2.5 ms.
    """

    def __init__(self, components: int = 8, momentum: float = 0.9, low: float = 1.5, high: float = 3.0,
                 refresh_every: int = 4) -> None:
        self.components = components
        self.momentum = momentum
        self.low, self.high = low, high
        self.refresh_every = refresh_every
        self._mean: np.ndarray | None = None
        self._cov: np.ndarray | None = None
        self._basis_cov: np.ndarray | None = None  # the running covariance the current basis is (to be) taken from
        self._projection: np.ndarray | None = None  # (C, k) whitening projection of _basis_cov (None: not yet done)
        self._age = 0
        self._buffer: np.ndarray | None = None  # (n, C) float32 scratch for centred features (reused every frame)

    def reset(self) -> None:
        self._mean, self._cov, self._basis_cov, self._projection, self._age = None, None, None, None, 0

    def _scratch(self, n: int, c: int) -> np.ndarray:
        if self._buffer is None or self._buffer.shape[1] != c or self._buffer.shape[0] < n:
            self._buffer = np.empty((n, c), np.float32)
        return self._buffer[:n]

    def observe(self, grid: np.ndarray, background: np.ndarray | None = None) -> None:
        """Update the running statistics with ``grid`` (h, w, C); ``background`` (h, w) bool, when given, selects
        the cells that update them (cells believed to be scene, not objects: a selective update, so that objects do
        not widen the model that should flag them)."""
        h, w, c = grid.shape
        x = grid.reshape(-1, c)
        sample = x
        if background is not None and background.shape == (h, w) and background.sum() >= max(16, c + 1):
            sample = x[background.reshape(-1)]
        mean = sample.mean(axis=0, dtype=np.float64)
        centred = np.subtract(sample, mean.astype(np.float32), out=self._scratch(sample.shape[0], c))
        cov = (centred.T @ centred).astype(np.float64) / max(1, sample.shape[0] - 1)
        if self._mean is None or self._mean.shape != mean.shape:
            self._mean, self._cov = mean, cov
        else:
            m = self.momentum
            self._mean = m * self._mean + (1 - m) * mean
            self._cov = m * self._cov + (1 - m) * cov
        if self._basis_cov is None or self._basis_cov.shape[0] != c or self._age >= self.refresh_every:
            self._basis_cov, self._projection, self._age = self._cov, None, 0
        self._age += 1

    def _whitening(self) -> np.ndarray:
        if self._projection is None:
            evals, evecs = np.linalg.eigh(self._basis_cov)
            k = max(1, min(self.components, self._basis_cov.shape[0]))
            evals, evecs = evals[::-1][:k], evecs[:, ::-1][:, :k]
            scale = np.sqrt(np.maximum(evals, 1e-6 * max(float(evals[0]), 1e-12)))
            self._projection = (evecs / scale).astype(np.float32)
        return self._projection

    def __call__(self, grid: np.ndarray, background: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        """``grid`` (h, w, C) -> saliency (h, w) in [0, 1] and whitened features (h, w, k), after ``observe``."""
        self.observe(grid, background)
        h, w, c = grid.shape
        projection = self._whitening()
        k = projection.shape[1]
        centred = np.subtract(grid.reshape(-1, c), self._mean.astype(np.float32), out=self._scratch(h * w, c))
        white = centred @ projection
        dist = np.sqrt((white**2).sum(axis=1) / k)
        saliency = np.clip((dist - self.low) / (self.high - self.low), 0.0, 1.0)
        saliency = saliency.reshape(h, w).astype(np.float32, copy=False)
        return saliency, white.reshape(h, w, k).astype(np.float32, copy=False)
