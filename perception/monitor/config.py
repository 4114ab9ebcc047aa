"""``MonitorConfig``: thresholds of the stream monitor (``perception.monitor.StreamMonitor``).

Every threshold is documented with its level table in the module that uses it: ``image_quality`` (luminance,
RMS contrast, noise) and ``feature_drift`` (drift and out-of-distribution scores, normalised so that 90 percent of
the reference frames, scored on held-out stretches of the reference period, score at most 1).
"""

from __future__ import annotations

from dataclasses import dataclass

from perception.config import ConfigError


@dataclass
class MonitorConfig:
    enabled: bool = True
    # image quality: luminance and RMS contrast in [0, 1] (Rec. 709 luma of the RGB image)
    luminance_warn: float = 0.15
    luminance_error: float = 0.05
    contrast_warn: float = 0.09
    contrast_error: float = 0.03
    noise_warn: float = 0.04              # noise standard deviation on [0, 1] (Immerkaer's estimator)
    noise_error: float = 0.08
    # feature statistics: reference from `reference_frames` frames, every `reference_every`-th one from the start
    # of the stream (so it spans reference_frames * reference_every frames), or from `reference_path` (.npz)
    reference_frames: int = 50
    reference_every: int = 2
    reference_path: str = ""
    shrinkage: float = 0.9                # covariance shrinkage toward a scaled identity (few frames, many dims)
    ood_warn: float = 1.5                 # normalised Mahalanobis distance (reference: <= 1 for 90% of frames)
    ood_error: float = 3.0
    drift_warn: float = 1.5               # normalised cosine distance of the drift EMA to the reference mean
    drift_error: float = 3.0
    drift_ema: float = 0.9                # momentum of the drift score over frames

    def __post_init__(self) -> None:
        pairs = [("luminance", self.luminance_error, self.luminance_warn, False),
                 ("contrast", self.contrast_error, self.contrast_warn, False),
                 ("noise", self.noise_warn, self.noise_error, True),
                 ("ood", self.ood_warn, self.ood_error, True), ("drift", self.drift_warn, self.drift_error, True)]
        for name, low, high, _ in pairs:
            if low > high:
                raise ConfigError(f"monitor.{name}: thresholds out of order ({low} > {high}); the ERROR threshold "
                                  "must be beyond the WARN one")
        if self.reference_frames < 4:
            raise ConfigError(f"monitor.reference_frames: expected >= 4, got {self.reference_frames}")
        if self.reference_every < 1:
            raise ConfigError(f"monitor.reference_every: expected >= 1, got {self.reference_every}")
        if not 0.0 <= self.shrinkage <= 1.0 or not 0.0 <= self.drift_ema < 1.0:
            raise ConfigError(f"monitor: shrinkage must be in [0, 1] and drift_ema in [0, 1), got "
                              f"{self.shrinkage}, {self.drift_ema}")
