"""Low-light and low-contrast indicators computed from the image itself.

Mean luminance: the mean of Rec. 709 luma ``Y = 0.2126 R + 0.7152 G + 0.0722 B`` on [0, 1] (computed on the
gamma-encoded values, as video luma is). RMS contrast: the standard deviation of ``Y`` over the image (Peli 1990,
"Contrast in complex images"). Both are cheap (the image is subsampled to at most ~160 px wide first).

| indicator | OK | WARN | ERROR | default thresholds (``MonitorConfig``) |
|---|---|---|---|---|
| mean luminance | > warn | <= ``luminance_warn`` | <= ``luminance_error`` | 0.15 / 0.05 |
| RMS contrast | > warn | <= ``contrast_warn`` | <= ``contrast_error`` | 0.06 / 0.02 |

A night scene without lights is about 0.02 to 0.08 luminance; fog, lens cover or a flat wall give RMS contrast
under 0.05; an ordinary indoor or outdoor frame has luminance 0.3 to 0.6 and RMS contrast 0.15 to 0.3.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from perception.monitor.config import MonitorConfig
from perception.monitor.levels import level_below, worst

LUMA_WEIGHTS = np.array([0.2126, 0.7152, 0.0722], np.float32)


@dataclass
class ImageQuality:
    luminance: float
    contrast: float
    luminance_level: str
    contrast_level: str

    @property
    def level(self) -> str:
        return worst(self.luminance_level, self.contrast_level)


def luma(image: np.ndarray) -> np.ndarray:
    """``(H, W, 3)`` uint8 RGB (or ``(H, W)`` grey) -> ``(h, w)`` float32 luma in [0, 1], subsampled."""
    if image.ndim not in (2, 3) or (image.ndim == 3 and image.shape[2] != 3):
        raise ValueError(f"image quality: expected (H, W, 3) RGB or (H, W) grey, got shape {image.shape}")
    step = max(1, image.shape[1] // 160)
    small = image[::step, ::step].astype(np.float32) / (255.0 if image.dtype == np.uint8 else 1.0)
    return small if small.ndim == 2 else small @ LUMA_WEIGHTS


def image_quality(image: np.ndarray, cfg: MonitorConfig) -> ImageQuality:
    y = luma(image)
    mean, rms = float(y.mean()), float(y.std())
    return ImageQuality(luminance=mean, contrast=rms,
                        luminance_level=level_below(mean, cfg.luminance_warn, cfg.luminance_error),
                        contrast_level=level_below(rms, cfg.contrast_warn, cfg.contrast_error))
