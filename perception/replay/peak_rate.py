"""Peak-rate search in the spirit of ros2_benchmark: the highest input rate the graph sustains with under 5 percent
of its frames dropped, then latency and jitter at fixed rates.

The search is independent of ROS: ``find_peak_rate(measure, ...)`` calls ``measure(rate_hz) -> drop_fraction`` for a
rising ladder of rates (each ``factor`` times the last) until one fails, then bisects between the last rate that
passed and the first that failed ``refine_steps`` times. A rate passes when its drop fraction is below
``max_drop_fraction``. The peak is the highest passing rate (None when even the first fails).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

MAX_DROP_FRACTION = 0.05


@dataclass
class PeakSearch:
    """The rates tried in order with their drop fractions, and the peak found."""

    tried: list[tuple[float, float]] = field(default_factory=list)
    peak_rate_hz: float | None = None


def find_peak_rate(measure: Callable[[float], float], start_hz: float = 2.0, factor: float = 2.0,
                   max_hz: float = 120.0, refine_steps: int = 2,
                   max_drop_fraction: float = MAX_DROP_FRACTION) -> PeakSearch:
    """Ladder up from ``start_hz`` to ``max_hz``, then bisect; see the module docstring."""
    if start_hz <= 0 or factor <= 1:
        raise ValueError(f"peak search: start_hz must be > 0 and factor > 1 (got {start_hz}, {factor})")
    search = PeakSearch()

    def passes(rate: float) -> bool:
        drop = float(measure(rate))
        search.tried.append((rate, drop))
        return drop < max_drop_fraction

    good, bad, rate = None, None, start_hz
    while rate <= max_hz:
        if passes(rate):
            good = rate
            rate = rate * factor
        else:
            bad = rate
            break
    lo = good if good is not None else 0.0
    if bad is not None:
        for _ in range(refine_steps):
            mid = round((lo + bad) / 2.0, 2)
            if mid <= 0 or mid in (lo, bad):
                break
            if passes(mid):
                lo = good = mid
            else:
                bad = mid
    search.peak_rate_hz = good
    return search
