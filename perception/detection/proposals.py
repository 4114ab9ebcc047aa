"""Person-shaped candidate windows and their features, for the few-shot detector.

A static camera looking down at a ground plane sees an object's image height grow linearly with the image row of
its foot point (Hoiem, Efros and Hebert, "Putting Objects in Perspective", CVPR 2006). :class:`BoxPrior` fits
``height / H = a + b * bottom / H`` and the median aspect ``w / h`` to a handful of labelled boxes; candidate
windows are then laid on a regular grid of foot points at a few relative scales and aspects
(:func:`candidate_windows`), as a sliding-window detector does (Dalal and Triggs, CVPR 2005), but with the size
tied to the row.

Window features (:func:`window_features`) are region means over integral images (Viola and Jones, CVPR 2001) of a
foreground map and of a per-cell class score map: the window as a whole, a 3x2 grid inside it (head/torso/legs,
left/right) and four bands around it (left, right, above, below).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

SCALES = (0.8, 0.92, 1.06, 1.22)
ASPECTS = (0.85, 1.15)
MIN_HEIGHT_PX = 16.0


@dataclass
class BoxPrior:
    """``height / H = a + b * (bottom / H)`` (clipped to ``min_height``), ``width = aspect * height``."""

    a: float
    b: float
    aspect: float
    min_height: float  # relative to H
    bottom_range: tuple[float, float]  # relative bottoms seen in the labels

    @classmethod
    def fit(cls, boxes: np.ndarray, image_size: tuple[int, int]) -> "BoxPrior":
        """Least squares on labelled ``x, y, w, h`` boxes of images of ``image_size`` (width, height)."""
        b = np.asarray(boxes, np.float64).reshape(-1, 4)
        b = b[(b[:, 2] > 0) & (b[:, 3] > 0)]
        if len(b) < 2:
            raise ValueError(f"BoxPrior.fit: need at least 2 labelled boxes with positive size, got {len(b)}")
        height = float(image_size[1])
        bottom, h = (b[:, 1] + b[:, 3]) / height, b[:, 3] / height
        if np.ptp(bottom) < 0.05:  # one row only: no slope can be seen
            slope, intercept = 0.0, float(np.median(h))
        else:
            slope, intercept = np.polyfit(bottom, h, 1)
        return cls(float(intercept), float(slope), float(np.median(b[:, 2] / b[:, 3])), float(h.min() * 0.5),
                   (float(bottom.min()), float(bottom.max())))

    def height(self, bottom: np.ndarray) -> np.ndarray:
        """Relative heights at relative bottoms."""
        return np.maximum(self.a + self.b * np.asarray(bottom, np.float64), self.min_height)

    def as_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> "BoxPrior":
        return cls(float(data["a"]), float(data["b"]), float(data["aspect"]), float(data["min_height"]),
                   tuple(data["bottom_range"]))


def candidate_windows(prior: BoxPrior, image_size: tuple[int, int], step: float = 4.0,
                      scales: tuple[float, ...] = SCALES, aspects: tuple[float, ...] = ASPECTS) -> np.ndarray:
    """``(K, 4)`` x, y, w, h windows: foot points every ``step`` pixels (centre x over the image, bottom from the
    top of the smallest plausible person to just below the image), each at every relative scale and aspect."""
    width, height = image_size
    bottoms = np.arange(max(step, MIN_HEIGHT_PX), height * 1.03, step)
    centres = np.arange(0.0, width + 1e-6, step)
    h_rel = prior.height(bottoms / height)
    out = []
    for s in scales:
        for a in aspects:
            hh = np.maximum(h_rel * height * s, MIN_HEIGHT_PX)
            ww = hh * prior.aspect * a
            bb, cc = np.meshgrid(np.arange(len(bottoms)), centres, indexing="ij")
            h_ = hh[bb.ravel()]
            w_ = ww[bb.ravel()]
            out.append(np.stack([cc.ravel() - w_ / 2, bottoms[bb.ravel()] - h_, w_, h_], axis=1))
    windows = np.concatenate(out)
    return windows[windows[:, 1] + windows[:, 3] * 0.5 > 0]  # at least half the window inside the top edge


def integral(values: np.ndarray) -> np.ndarray:
    """Summed-area table ``(h + 1, w + 1)`` of a 2-D map (float64)."""
    table = np.zeros((values.shape[0] + 1, values.shape[1] + 1))
    table[1:, 1:] = np.asarray(values, np.float64).cumsum(0).cumsum(1)
    return table


def region_mean(table: np.ndarray, x0: np.ndarray, y0: np.ndarray, x1: np.ndarray, y1: np.ndarray,
                scale: float) -> np.ndarray:
    """Mean of the map under pixel regions ``[x0, x1) x [y0, y1)`` (clipped to the map, which has ``scale`` map
    cells per pixel); regions outside the map have mean 0."""
    h, w = table.shape[0] - 1, table.shape[1] - 1
    c0 = np.clip(np.round(x0 * scale), 0, w).astype(np.int64)
    c1 = np.clip(np.round(x1 * scale), 0, w).astype(np.int64)
    r0 = np.clip(np.round(y0 * scale), 0, h).astype(np.int64)
    r1 = np.clip(np.round(y1 * scale), 0, h).astype(np.int64)
    c1, r1 = np.maximum(c1, np.minimum(c0 + 1, w)), np.maximum(r1, np.minimum(r0 + 1, h))
    total = table[r1, c1] - table[r0, c1] - table[r1, c0] + table[r0, c0]
    area = (r1 - r0) * (c1 - c0)
    return np.where(area > 0, total / np.maximum(area, 1), 0.0)


def _regions(windows: np.ndarray) -> list[tuple[np.ndarray, ...]]:
    """The window, its 3x2 sub-grid and four surrounding bands, each as ``(x0, y0, x1, y1)``."""
    x, y, w, h = windows.T
    regions = [(x, y, x + w, y + h)]
    for row in range(3):
        for col in range(2):
            regions.append((x + col * w / 2, y + row * h / 3, x + (col + 1) * w / 2, y + (row + 1) * h / 3))
    regions += [(x - 0.35 * w, y, x, y + h), (x + w, y, x + 1.35 * w, y + h),
                (x, y - 0.2 * h, x + w, y), (x, y + h, x + w, y + 1.1 * h)]
    return regions


N_REGIONS = 11


def window_features(windows: np.ndarray, maps: list[tuple[np.ndarray, float]], image_size: tuple[int, int],
                    prior: BoxPrior | None = None) -> np.ndarray:
    """``(K, F)`` features of ``windows``: for each ``(map, cells_per_pixel)`` the mean over the 11 regions, then
    the fraction of the window inside the image and, with ``prior``, the log ratio of its height to the prior's."""
    feats = []
    for values, scale in maps:
        table = integral(values)
        for region in _regions(windows):
            feats.append(region_mean(table, *region, scale))
    width, height = image_size
    x, y, w, h = windows.T
    inside = ((np.clip(x + w, 0, width) - np.clip(x, 0, width)) * (np.clip(y + h, 0, height) - np.clip(y, 0, height))
              / np.maximum(w * h, 1e-6))
    feats.append(inside)
    if prior is not None:
        expected = prior.height((y + h) / height) * height
        feats.append(np.log(np.maximum(h, 1.0) / np.maximum(expected, 1.0)))
    return np.stack(feats, axis=1).astype(np.float32)
