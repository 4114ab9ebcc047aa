"""Low-light, low-contrast and noise indicators computed from the image itself.

Mean luminance: the mean of Rec. 709 luma ``Y = 0.2126 R + 0.7152 G + 0.0722 B`` on [0, 1] (computed on the
gamma-encoded values, as video luma is). RMS contrast: the standard deviation of ``Y`` over the image (Peli 1990,
"Contrast in complex images"). Both on the image subsampled to at most ~160 px wide. Noise: the standard deviation
of additive noise by Immerkaer's estimator (1996, "Fast noise variance estimation": the mean absolute response to
the difference of two Laplacians, ``sqrt(pi/2) / 6 * mean|Y * N|``), on a full-resolution centre crop of at most
320x240 (subsampling would alias texture into it).

| indicator | OK | WARN | ERROR | default thresholds (``MonitorConfig``) |
|---|---|---|---|---|
| mean luminance | > warn | <= ``luminance_warn`` | <= ``luminance_error`` | 0.15 / 0.05 |
| RMS contrast | > warn | <= ``contrast_warn`` | <= ``contrast_error`` | 0.09 / 0.03 |
| noise sigma | < warn | >= ``noise_warn`` | >= ``noise_error`` | 0.04 / 0.08 |

Measured on the real clips of ``../shared/data`` (bikes, vtest, carnd, tree, DAVIS): ordinary frames have luminance
0.28 to 0.66, RMS contrast 0.11 to 0.25 and noise 0.001 to 0.023; the benchmark's shifts (``perception.eval.shifts``)
of the same frames give luminance 0.04 to 0.14 (``lowlight``), RMS contrast 0.03 to 0.09 (``lowcontrast``, ``fog``,
``lowlight``) and noise 0.072 to 0.078 (``noise``, sigma 0.1 before clipping). A night scene without lights is about
0.02 to 0.08 luminance; fog, lens cover or a flat wall give RMS contrast under 0.05.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from perception.monitor.config import MonitorConfig
from perception.monitor.levels import level_above, level_below, worst

LUMA_WEIGHTS = np.array([0.2126, 0.7152, 0.0722], np.float32)
NOISE_CROP = (240, 320)  # (h, w) of the full-resolution centre crop the noise is estimated on
_LAPLACIAN_DIFFERENCE = np.array([[1, -2, 1], [-2, 4, -2], [1, -2, 1]], np.float32)


@dataclass
class ImageQuality:
    luminance: float
    contrast: float
    luminance_level: str
    contrast_level: str
    noise: float = 0.0
    noise_level: str = "OK"

    @property
    def level(self) -> str:
        return worst(self.luminance_level, self.contrast_level, self.noise_level)


def luma(image: np.ndarray) -> np.ndarray:
    """``(H, W, 3)`` uint8 RGB (or ``(H, W)`` grey) -> ``(h, w)`` float32 luma in [0, 1], subsampled."""
    if image.ndim not in (2, 3) or (image.ndim == 3 and image.shape[2] != 3):
        raise ValueError(f"image quality: expected (H, W, 3) RGB or (H, W) grey, got shape {image.shape}")
    step = max(1, image.shape[1] // 160)
    small = image[::step, ::step].astype(np.float32) / (255.0 if image.dtype == np.uint8 else 1.0)
    return small if small.ndim == 2 else small @ LUMA_WEIGHTS


def noise_sigma(image: np.ndarray) -> float:
    """Immerkaer's noise standard deviation (on [0, 1]) of the luma of a full-resolution centre crop."""
    h, w = image.shape[:2]
    ch, cw = min(h, NOISE_CROP[0]), min(w, NOISE_CROP[1])
    top, left = (h - ch) // 2, (w - cw) // 2
    crop = image[top:top + ch, left:left + cw].astype(np.float32) / (255.0 if image.dtype == np.uint8 else 1.0)
    y = crop if crop.ndim == 2 else crop @ LUMA_WEIGHTS
    if min(y.shape) < 3:
        return 0.0
    response = cv2.filter2D(y, -1, _LAPLACIAN_DIFFERENCE, borderType=cv2.BORDER_REFLECT)[1:-1, 1:-1]
    return float(np.sqrt(np.pi / 2.0) / 6.0 * np.abs(response).mean())


def image_quality(image: np.ndarray, cfg: MonitorConfig) -> ImageQuality:
    y = luma(image)
    mean, rms, sigma = float(y.mean()), float(y.std()), noise_sigma(image)
    return ImageQuality(luminance=mean, contrast=rms,
                        luminance_level=level_below(mean, cfg.luminance_warn, cfg.luminance_error),
                        contrast_level=level_below(rms, cfg.contrast_warn, cfg.contrast_error),
                        noise=sigma, noise_level=level_above(sigma, cfg.noise_warn, cfg.noise_error))
