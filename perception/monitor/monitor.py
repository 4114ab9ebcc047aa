"""``StreamMonitor``: one call per frame, image quality plus feature drift/OOD, as levels for diagnostics."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from perception.monitor.config import MonitorConfig
from perception.monitor.feature_drift import FeatureDriftMonitor, FeatureScores
from perception.monitor.image_quality import ImageQuality, image_quality
from perception.monitor.levels import OK, worst


@dataclass
class MonitorReport:
    image: ImageQuality
    features: FeatureScores | None

    @property
    def level(self) -> str:
        levels = [self.image.level]
        if self.features is not None:
            levels += [self.features.ood_level, self.features.drift_level]
        return worst(*levels)

    def problems(self) -> list[str]:
        """Human-readable reasons for a level above OK."""
        out = []
        if self.image.luminance_level != OK:
            out.append(f"low light: mean luminance {self.image.luminance:.3f} ({self.image.luminance_level})")
        if self.image.contrast_level != OK:
            out.append(f"low contrast: RMS {self.image.contrast:.3f} ({self.image.contrast_level})")
        if self.image.noise_level != OK:
            out.append(f"noisy image: noise sigma {self.image.noise:.3f} ({self.image.noise_level})")
        f = self.features
        if f is not None and f.ood_level != OK:
            out.append(f"out of distribution: score {f.ood:.2f} ({f.ood_level})")
        if f is not None and f.drift_level != OK:
            out.append(f"feature drift: score {f.drift:.2f} ({f.drift_level})")
        return out

    def values(self) -> dict[str, Any]:
        """Flat key/values for ``/diagnostics``."""
        out: dict[str, Any] = {"monitor_level": self.level, "luminance": self.image.luminance,
                               "luminance_level": self.image.luminance_level, "contrast": self.image.contrast,
                               "contrast_level": self.image.contrast_level, "noise": self.image.noise,
                               "noise_level": self.image.noise_level}
        if self.features is not None:
            out.update({"ood_score": self.features.ood, "ood_level": self.features.ood_level,
                        "drift_score": self.features.drift, "drift_level": self.features.drift_level})
        return out


class StreamMonitor:
    def __init__(self, cfg: MonitorConfig) -> None:
        self.cfg = cfg
        self.features = FeatureDriftMonitor(cfg)
        self.last: MonitorReport | None = None

    def update(self, image: np.ndarray, embedding: np.ndarray | None = None) -> MonitorReport:
        """Score one frame: ``image`` (H, W, 3) uint8 RGB, ``embedding`` the encoder's global embedding (D,)."""
        scores = self.features.update(embedding) if embedding is not None else None
        self.last = MonitorReport(image=image_quality(image, self.cfg), features=scores)
        return self.last
