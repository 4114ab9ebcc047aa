"""AdaptationGuard on hand-made signals: each threshold trips, the trip window, snapshots, state round trip."""

from __future__ import annotations

import pytest
import torch

from perception.adaptation import (ADAPTING, DISABLED, FALLBACK_SOURCE, ROLLED_BACK, AdaptationConfig,
                                   AdaptationGuard, HealthSample)
from perception.adaptation.guard import health_sample


def healthy(loss: float = 1.0, **kw) -> HealthSample:
    values = dict(loss=loss, feature_std=0.1, source_feature_std=0.1, effective_rank=20.0,
                  source_effective_rank=20.0, drift=0.05)
    values.update(kw)
    return HealthSample(**values)


class Clock:
    def __init__(self) -> None:
        self.t = 0.0

    def __call__(self) -> float:
        return self.t


def guard(**kw) -> tuple[AdaptationGuard, Clock]:
    clock = Clock()
    return AdaptationGuard(AdaptationConfig(enabled=True, **kw), clock=clock), clock


@pytest.mark.parametrize("sample, reason", [
    (healthy(feature_std=0.049), "collapse: feature std"),
    (healthy(effective_rank=9.9), "collapse: effective rank"),
    (healthy(drift=0.36), "drift"),
    (healthy(loss=float("nan")), "non-finite"),
    (healthy(exposure_before=0.5, exposure_after=0.56), "exposure objective worsened"),
])
def test_each_signal_trips(sample, reason):
    g, _ = guard(drift_max=0.35)
    assert g.check(healthy()).ok
    verdict = g.check(sample)
    assert not verdict.ok and verdict.action == "rollback" and verdict.reasons[0].startswith(reason)
    assert g.status == ROLLED_BACK and g.rollbacks == 1


def test_thresholds_are_relative_to_the_source_and_inclusive_of_healthy_values():
    g, _ = guard(drift_max=0.35)
    assert g.check(healthy(feature_std=0.05, effective_rank=10.0, drift=0.35)).ok    # exactly at the limits
    assert g.check(healthy(exposure_before=0.5, exposure_after=0.55)).ok              # within the tolerance
    assert g.check(healthy(exposure_before=0.5, exposure_after=0.0)).ok               # improved


def test_a_rising_loss_trips_against_the_best_ema():
    g, _ = guard(loss_ema=0.5, loss_rise_factor=2.0)
    for _ in range(5):
        assert g.check(healthy(loss=1.0)).ok
    assert g.best_loss_ema == pytest.approx(1.0)
    assert g.check(healthy(loss=2.9)).ok           # EMA 1.95 < 2.0
    verdict = g.check(healthy(loss=3.0))           # EMA 2.475 > 2.0
    assert not verdict.ok and verdict.reasons[0].startswith("loss rising")
    assert g.loss_ema == pytest.approx(1.0)        # back to the EMA of the weights rolled back to


def test_snapshots_every_k_good_updates():
    g, _ = guard(snapshot_every=3)
    actions = [g.check(healthy()).action for _ in range(7)]
    assert actions == ["none", "none", "snapshot", "none", "none", "snapshot", "none"]


def test_trips_outside_the_window_do_not_count_towards_fallback():
    g, clock = guard(max_trips=2, trip_window_s=10.0)
    assert g.check(healthy(drift=1.0)).action == "rollback"
    clock.t = 11.0
    assert g.check(healthy(drift=1.0)).action == "rollback"      # the first trip left the window
    clock.t = 15.0
    assert g.check(healthy(drift=1.0)).action == "fallback"
    assert g.status == FALLBACK_SOURCE and g.trips == 3 and g.rollbacks == 2
    assert g.check(healthy()).action == "none" and g.status == FALLBACK_SOURCE   # stays until a reset
    g.reset()
    assert g.status == ADAPTING and g.trips == 0


def test_state_round_trip_and_disabled():
    g, _ = guard()
    g.check(healthy())
    g.check(healthy(drift=1.0))
    other, _ = guard()
    other.load_state_dict(g.state_dict())
    assert other.state_dict() == g.state_dict()
    with pytest.raises(ValueError, match="unknown status"):
        other.load_state_dict({"status": "happy"})
    off = AdaptationGuard(AdaptationConfig(enabled=False))
    assert off.status == DISABLED and not off.check(healthy()).ok


def test_health_sample_of_a_collapsed_map():
    torch.manual_seed(0)
    source = torch.randn(2, 16, 6, 8)
    same = health_sample(source, source, 1.0)
    assert same.drift == pytest.approx(0.0, abs=1e-6) and same.feature_std == same.source_feature_std
    collapsed = health_sample(torch.ones(2, 16, 6, 8), source, 1.0)
    assert collapsed.feature_std == pytest.approx(0.0, abs=1e-9)
    assert collapsed.effective_rank == pytest.approx(1.0, abs=1e-6) and collapsed.source_effective_rank > 10
