"""Counters and rolling statistics for running pipelines and nodes: frame rate and latency percentiles.

Thread-safe; bounded memory (a fixed window of recent samples) so a node can run for days.
"""

from __future__ import annotations

import threading
import time
from collections import deque

import numpy as np


def percentiles(values, qs=(50, 95, 99)) -> dict[str, float | None]:
    """``{"p50": ..., "p95": ..., "p99": ...}`` of ``values`` (None when empty), linear interpolation."""
    arr = np.asarray(list(values), dtype=np.float64)
    if arr.size == 0:
        return {f"p{q}": None for q in qs}
    return {f"p{q}": float(np.percentile(arr, q)) for q in qs}


class RollingStats:
    """Event times and latencies over the last ``window`` samples.

    ``tick(latency_ms)`` records one processed item; ``rate_hz()`` is the rate over the window; ``latency_ms()`` the
    percentiles. ``count`` keeps the total since start (never windowed).
    """

    def __init__(self, window: int = 300, clock=time.monotonic) -> None:
        self._times: deque[float] = deque(maxlen=window)
        self._latencies: deque[float] = deque(maxlen=window)
        self._lock = threading.Lock()
        self._clock = clock
        self.count = 0

    def tick(self, latency_ms: float | None = None) -> None:
        with self._lock:
            self._times.append(self._clock())
            if latency_ms is not None:
                self._latencies.append(float(latency_ms))
            self.count += 1

    def rate_hz(self) -> float:
        with self._lock:
            if len(self._times) < 2:
                return 0.0
            span = self._times[-1] - self._times[0]
            return (len(self._times) - 1) / span if span > 0 else 0.0

    def latency_ms(self) -> dict[str, float | None]:
        with self._lock:
            values = list(self._latencies)
        return percentiles(values)
