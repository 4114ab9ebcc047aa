"""Per-frame drift and out-of-distribution scores of the global embedding against reference statistics.

The reference (``ReferenceStats``) comes from ``MonitorConfig.reference_path`` or is fitted on the first
``reference_frames`` frames of the stream (scores are NaN and levels OK while it is collected).

| score | definition | WARN | ERROR |
|---|---|---|---|
| ``ood`` | Mahalanobis distance to the reference Gaussian / typical (Lee 2018) | ``ood_warn`` 2 | ``ood_error`` 4 |
| ``drift`` | EMA (``drift_ema``) of cosine distance to ref. mean / typical | ``drift_warn`` 2 | ``drift_error`` 4 |

"typical": the score's mean on reference frames, measured out of sample; a level applies at ``>=`` its threshold.

Both are about 1 on frames like the reference ones. ``ood`` reacts to a single odd frame; ``drift`` to a lasting
change of scene, lighting or camera (a slow signal, as dataset-shift monitors average over a window).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from perception.monitor.config import MonitorConfig
from perception.monitor.levels import OK, level_above
from perception.monitor.reference import ReferenceStats


@dataclass
class FeatureScores:
    ood: float
    drift: float
    ood_level: str
    drift_level: str
    reference_frames: int     # frames in the reference (still collecting while < MonitorConfig.reference_frames)


class FeatureDriftMonitor:
    """``update(embedding (D,)) -> FeatureScores``; ``reference`` once fitted or loaded."""

    def __init__(self, cfg: MonitorConfig, reference: ReferenceStats | None = None) -> None:
        self.cfg = cfg
        self.reference = reference
        if reference is None and cfg.reference_path:
            self.reference = ReferenceStats.load(cfg.reference_path)
        self._collected: list[np.ndarray] = []
        self._drift: float | None = None

    def reset(self) -> None:
        """Collect a new reference from the next frames (a loaded reference file is kept)."""
        self.reference = ReferenceStats.load(self.cfg.reference_path) if self.cfg.reference_path else None
        self._collected, self._drift = [], None

    def update(self, embedding: np.ndarray) -> FeatureScores:
        e = np.asarray(embedding, np.float64).reshape(-1)
        if self.reference is None:
            self._collected.append(e)
            if len(self._collected) >= self.cfg.reference_frames:
                self.reference = ReferenceStats.fit(np.stack(self._collected), self.cfg.shrinkage)
                self._collected = []
            return FeatureScores(float("nan"), float("nan"), OK, OK, len(self._collected) or self.cfg.reference_frames)
        ood = self.reference.ood_score(e)
        cos = self.reference.cosine_score(e)
        m = self.cfg.drift_ema
        self._drift = cos if self._drift is None else m * self._drift + (1.0 - m) * cos
        return FeatureScores(ood=ood, drift=self._drift,
                             ood_level=level_above(ood, self.cfg.ood_warn, self.cfg.ood_error),
                             drift_level=level_above(self._drift, self.cfg.drift_warn, self.cfg.drift_error),
                             reference_frames=self.reference.count)
