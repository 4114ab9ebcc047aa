"""``AdaptationGuard``: decides after each update whether the adapted model is still healthy.

Test-time adaptation can make a model worse: TENT and CoTTA report error accumulation and collapse on long or
shifting streams, EATA (Niu et al. 2022) filters and anchors updates, and CoTTA restores source weights. The guard
watches three signals, each against the frozen source model on the same buffered frames:

| signal | measured on | trips when |
|---|---|---|
| collapse: feature std | adapted dense features (L2-normalised, ``feature_std``) | ``< std_ratio_min * source`` |
| collapse: effective rank | adapted dense features (``effective_rank``, RankMe) | ``< rank_ratio_min * source`` |
| drift | mean cosine distance adapted vs source features, per position | ``> drift_max`` |
| loss trend | EMA of the adaptation loss (momentum ``loss_ema``) | ``> loss_rise_factor * best EMA`` |
| exposure worsened | ``ExposureLoss`` of the adapted input on the update's clip, before vs after | ``after > before + exposure_tolerance`` |
| non-finite | loss or features | NaN or inf |

On a trip the adapter rolls back to the last good snapshot (taken every ``snapshot_every`` good updates; the
source weights before the first); after ``max_trips`` trips within ``trip_window_s`` it falls back to the frozen
source model for good (until a reset). States: ``adapting``, ``rolled_back`` (the last update tripped; the next good
one returns to ``adapting``), ``fallback_source``, ``disabled``.
"""

from __future__ import annotations

import math
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F

from perception.adaptation.config import AdaptationConfig
from perception.losses import effective_rank, feature_std

ADAPTING, ROLLED_BACK, FALLBACK_SOURCE, DISABLED = "adapting", "rolled_back", "fallback_source", "disabled"
STATES = (ADAPTING, ROLLED_BACK, FALLBACK_SOURCE, DISABLED)


@dataclass
class HealthSample:
    """What the guard is shown after an update (floats; the source values on the same frames)."""

    loss: float
    feature_std: float
    source_feature_std: float
    effective_rank: float
    source_effective_rank: float
    drift: float
    exposure_before: float = math.nan   # ExposureLoss of the clip with the weights before / after the update
    exposure_after: float = math.nan


@torch.no_grad()
def health_sample(adapted: torch.Tensor, source: torch.Tensor, loss: float) -> HealthSample:
    """Signals from the adapted and source dense maps ``(B, C, h, w)`` of the same frames."""
    drift = (1.0 - F.cosine_similarity(adapted.float(), source.float(), dim=1)).mean()
    return HealthSample(loss=loss, feature_std=float(feature_std(adapted)),
                        source_feature_std=float(feature_std(source)), effective_rank=float(effective_rank(adapted)),
                        source_effective_rank=float(effective_rank(source)), drift=float(drift))


@dataclass
class Verdict:
    ok: bool
    action: str                     # "none" | "snapshot" | "rollback" | "fallback"
    reasons: list[str] = field(default_factory=list)


class AdaptationGuard:
    """``check(sample) -> Verdict`` and the guard's state (``status``, counters, the loss EMA)."""

    def __init__(self, cfg: AdaptationConfig, clock: Callable[[], float] = time.monotonic) -> None:
        self.cfg = cfg
        self.clock = clock
        self.status = ADAPTING if cfg.enabled else DISABLED
        self.good_updates = 0
        self.trips = 0
        self.rollbacks = 0
        self.loss_ema: float | None = None
        self.best_loss_ema: float | None = None
        self.last_drift = 0.0
        self.last_reasons: list[str] = []
        self._trip_times: deque[float] = deque()

    def problems(self, s: HealthSample) -> list[str]:
        """Why ``s`` is unhealthy (empty when healthy); updates the loss EMA."""
        c = self.cfg
        values = (s.loss, s.feature_std, s.effective_rank, s.drift)
        if not all(math.isfinite(v) for v in values):
            return [f"non-finite value (loss {s.loss}, std {s.feature_std}, rank {s.effective_rank}, "
                    f"drift {s.drift})"]
        reasons = []
        if s.feature_std < c.std_ratio_min * s.source_feature_std:
            reasons.append(f"collapse: feature std {s.feature_std:.4g} < {c.std_ratio_min} x source "
                           f"{s.source_feature_std:.4g}")
        if s.effective_rank < c.rank_ratio_min * s.source_effective_rank:
            reasons.append(f"collapse: effective rank {s.effective_rank:.3g} < {c.rank_ratio_min} x source "
                           f"{s.source_effective_rank:.3g}")
        if (math.isfinite(s.exposure_before) and math.isfinite(s.exposure_after)
                and s.exposure_after > s.exposure_before + c.exposure_tolerance):
            reasons.append(f"exposure objective worsened by the update: {s.exposure_before:.4g} -> "
                           f"{s.exposure_after:.4g} (tolerance {c.exposure_tolerance})")
        if s.drift > c.drift_max:
            reasons.append(f"drift: cosine distance to source {s.drift:.3g} > {c.drift_max}")
        self.loss_ema = s.loss if self.loss_ema is None else c.loss_ema * self.loss_ema + (1 - c.loss_ema) * s.loss
        if self.best_loss_ema is not None and self.loss_ema > c.loss_rise_factor * max(self.best_loss_ema, 1e-8):
            reasons.append(f"loss rising: EMA {self.loss_ema:.4g} > {c.loss_rise_factor} x best "
                           f"{self.best_loss_ema:.4g}")
        return reasons

    def check(self, s: HealthSample) -> Verdict:
        if self.status in (FALLBACK_SOURCE, DISABLED):
            return Verdict(ok=False, action="none", reasons=[f"guard is {self.status}"])
        self.last_drift = s.drift
        reasons = self.problems(s)
        self.last_reasons = reasons
        if not reasons:
            self.good_updates += 1
            self.status = ADAPTING
            if self.loss_ema is not None:
                self.best_loss_ema = self.loss_ema if self.best_loss_ema is None else min(self.best_loss_ema,
                                                                                          self.loss_ema)
            due = self.good_updates % self.cfg.snapshot_every == 0
            return Verdict(ok=True, action="snapshot" if due else "none")
        return Verdict(ok=False, action=self.trip(), reasons=reasons)

    def trip(self) -> str:
        """Count a trip; ``"rollback"`` or, after ``max_trips`` in the window, ``"fallback"``."""
        now = self.clock()
        self.trips += 1
        self._trip_times.append(now)
        while self._trip_times and now - self._trip_times[0] > self.cfg.trip_window_s:
            self._trip_times.popleft()
        self.loss_ema = self.best_loss_ema  # the rolled-back weights gave the best EMA, not the tripped one
        if len(self._trip_times) >= self.cfg.max_trips:
            self.status = FALLBACK_SOURCE
            return "fallback"
        self.rollbacks += 1
        self.status = ROLLED_BACK
        return "rollback"

    def reset(self) -> None:
        """Back to a fresh guard (after ``OnlineAdapter.reset``)."""
        self.__init__(self.cfg, self.clock)  # type: ignore[misc]

    def state_dict(self) -> dict:
        return {"status": self.status, "good_updates": self.good_updates, "trips": self.trips,
                "rollbacks": self.rollbacks, "loss_ema": self.loss_ema, "best_loss_ema": self.best_loss_ema,
                "last_drift": self.last_drift, "last_reasons": list(self.last_reasons)}

    def load_state_dict(self, state: dict) -> None:
        status = state.get("status", ADAPTING)
        if status not in STATES:
            raise ValueError(f"AdaptationGuard: unknown status {status!r} in saved state (expected one of {STATES})")
        self.status = status if self.cfg.enabled else DISABLED
        for key in ("good_updates", "trips", "rollbacks"):
            setattr(self, key, int(state.get(key, 0)))
        self.loss_ema, self.best_loss_ema = state.get("loss_ema"), state.get("best_loss_ema")
        self.last_drift = float(state.get("last_drift", 0.0))
        self.last_reasons = list(state.get("last_reasons", []))
