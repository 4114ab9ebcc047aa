"""Photometric distribution shifts for the adaptation benchmark and the monitor: pure functions on frames.

Each shift maps an ``(H, W, 3)`` uint8 RGB frame to a new uint8 frame of the same shape and never changes the
geometry, so ground truth (masks, boxes) stays valid. They follow the corruption families of Hendrycks & Dietterich
2019 ("Benchmarking neural network robustness to common corruptions and perturbations", ImageNet-C) at one fixed,
moderate severity each, chosen so the stream monitor's image indicators see the light and contrast ones:

| shift | what it does | mean luma / RMS contrast of a typical frame (0.45 / 0.20) |
|---|---|---|
| ``none`` | identity | 0.45 / 0.20 |
| ``lowlight`` | ``0.25 * x ** 1.5`` on [0, 1] (less light, darker shadows), then quantised | ~0.08 / ~0.05 |
| ``lowcontrast`` | ``m + 0.3 * (x - m)``, ``m`` the frame's mean per channel | 0.45 / ~0.06 |
| ``fog`` | ``0.35 * x + 0.65 * 0.8`` (a uniform veil of bright haze) | ~0.68 / ~0.07 |
| ``noise`` | ``x + N(0, 0.1)`` per pixel and channel (sensor noise), clipped | 0.45 / ~0.22 |
| ``blur`` | Gaussian blur, sigma 3 px (defocus / motion) | 0.45 / ~0.18 |

``noise`` draws from a generator seeded by ``seed`` (callers pass the frame index), so a shifted stream is the
same on every run. ``apply_shift(name, frame, seed)`` dispatches by name; unknown names raise naming the known ones.
"""

from __future__ import annotations

from collections.abc import Callable

import cv2
import numpy as np

LOWLIGHT_GAIN, LOWLIGHT_GAMMA = 0.25, 1.5
LOWCONTRAST_FACTOR = 0.3
FOG_TRANSMISSION, FOG_AIRLIGHT = 0.35, 0.8
NOISE_SIGMA = 0.1
BLUR_SIGMA = 3.0


def _check(frame: np.ndarray) -> np.ndarray:
    if frame.ndim != 3 or frame.shape[2] != 3 or frame.dtype != np.uint8:
        raise ValueError(f"shift: expected an (H, W, 3) uint8 RGB frame, got {frame.shape} {frame.dtype}")
    return frame.astype(np.float32) / 255.0


def _to_uint8(x: np.ndarray) -> np.ndarray:
    return (np.clip(x, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)


def none(frame: np.ndarray, seed: int = 0) -> np.ndarray:
    """The frame itself (a copy)."""
    _check(frame)
    return frame.copy()


def lowlight(frame: np.ndarray, seed: int = 0) -> np.ndarray:
    """Dimmer light: ``gain * x ** gamma``."""
    return _to_uint8(LOWLIGHT_GAIN * np.power(_check(frame), LOWLIGHT_GAMMA))


def lowcontrast(frame: np.ndarray, seed: int = 0) -> np.ndarray:
    """Contrast scaled about each channel's mean."""
    x = _check(frame)
    mean = x.reshape(-1, 3).mean(axis=0)
    return _to_uint8(mean + LOWCONTRAST_FACTOR * (x - mean))


def fog(frame: np.ndarray, seed: int = 0) -> np.ndarray:
    """Koschmieder's haze model with a uniform transmission: ``t * x + (1 - t) * airlight``."""
    return _to_uint8(FOG_TRANSMISSION * _check(frame) + (1.0 - FOG_TRANSMISSION) * FOG_AIRLIGHT)


def noise(frame: np.ndarray, seed: int = 0) -> np.ndarray:
    """Additive Gaussian noise of standard deviation ``NOISE_SIGMA``, drawn from ``seed``."""
    x = _check(frame)
    rng = np.random.default_rng(seed)
    return _to_uint8(x + rng.normal(0.0, NOISE_SIGMA, size=x.shape).astype(np.float32))


def blur(frame: np.ndarray, seed: int = 0) -> np.ndarray:
    """Gaussian blur of ``BLUR_SIGMA`` pixels (kernel 6 sigma + 1), edges reflected."""
    _check(frame)
    size = int(6 * BLUR_SIGMA) | 1
    return cv2.GaussianBlur(frame, (size, size), BLUR_SIGMA, borderType=cv2.BORDER_REFLECT101)


SHIFTS: dict[str, Callable[[np.ndarray, int], np.ndarray]] = {
    "none": none, "lowlight": lowlight, "lowcontrast": lowcontrast, "fog": fog, "noise": noise, "blur": blur,
}


def parse_shifts(text: str) -> list[str]:
    """``"none,fog"`` -> ``["none", "fog"]``; raises naming unknown shifts and the known ones."""
    names = [s.strip() for s in text.split(",") if s.strip()]
    unknown = [s for s in names if s not in SHIFTS]
    if unknown or not names:
        raise ValueError(f"--shifts: unknown {', '.join(unknown) or '(none given)'} (known: {', '.join(SHIFTS)})")
    return names


def apply_shift(name: str, frame: np.ndarray, seed: int = 0) -> np.ndarray:
    """The frame under shift ``name``."""
    try:
        fn = SHIFTS[name]
    except KeyError:
        raise ValueError(f"unknown shift {name!r} (known: {', '.join(SHIFTS)})") from None
    return fn(frame, seed)
