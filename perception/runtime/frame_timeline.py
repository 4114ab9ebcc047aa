"""``FrameTimeline``: where each frame's latency went, stage by stage, for the frames a node published.

A frame's life in ``perception_node`` is a chain of wall-clock marks (``time.time_ns()``, the clock the camera stamps
its headers with on one machine): ``stamp`` (the input header), ``received`` (the subscription callback ran),
``taken`` (the worker took it from the latest-only slot), ``encoded`` (encoder done), ``finishing`` (the second half
started: detection, monitor) and ``published``. ``add(marks)`` keeps the last ``capacity`` chains; ``summary()``
gives the percentiles of each step (``stamp->received``, ...) and, for the slowest frames end to end, the mean of
each step: which step the tail frames lost their time in. A ``delivered`` mark added later (the receipt downstream,
joined by stamp: ``perception.bench.ros_graph``) extends the chain to the subscriber.

Frames replaced in the latest-only slot never reach ``published`` and have no chain; they are counted as drops
elsewhere.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Iterable, Mapping, Sequence

import numpy as np

from perception.runtime.stats import percentiles

MARKS = ("stamp", "received", "taken", "encoded", "finishing", "published")


def now_ns() -> int:
    """The timeline's clock: wall-clock nanoseconds, comparable with header stamps from the same machine."""
    return time.time_ns()


def steps(marks: Sequence[str]) -> list[str]:
    return [f"{a}->{b}" for a, b in zip(marks[:-1], marks[1:])]


def summarise(rows: Iterable[Mapping[str, int]], marks: Sequence[str] = MARKS, tail_fraction: float = 0.05) -> dict:
    """Per-step percentiles (ms) over ``rows`` (each a complete chain of ``marks``, nanoseconds) and the tail:
    ``{"frames", "total_ms": {p50, p95, p99, max}, "steps_ms": {step: {p50, p95, p99, mean}},
    "tail": {"frames", "from_ms", "steps_mean_ms": {step: mean}}}``. The tail is the slowest ``tail_fraction`` of
    frames by ``marks[0] -> marks[-1]`` (at least one frame)."""
    complete = [row for row in rows if all(m in row for m in marks)]
    if not complete:
        return {"frames": 0}
    stamps = np.array([[row[m] for m in marks] for row in complete], dtype=np.int64)
    deltas = np.diff(stamps, axis=1) / 1e6  # (frames, steps) ms
    totals = (stamps[:, -1] - stamps[:, 0]) / 1e6
    names = steps(marks)

    def pct(values: np.ndarray) -> dict[str, float]:
        return {**{k: round(v, 2) for k, v in percentiles(values).items()}, "mean": round(float(values.mean()), 2)}

    count = max(1, int(round(len(totals) * tail_fraction)))
    slowest = np.argsort(totals)[-count:]
    return {
        "frames": len(complete),
        "total_ms": {**pct(totals), "max": round(float(totals.max()), 2)},
        "steps_ms": {name: pct(deltas[:, i]) for i, name in enumerate(names)},
        "tail": {"frames": count, "from_ms": round(float(totals[slowest].min()), 2),
                 "steps_mean_ms": {name: round(float(deltas[slowest, i].mean()), 2) for i, name in enumerate(names)}},
    }


class FrameTimeline:
    """The last ``capacity`` complete chains of marks; thread-safe."""

    def __init__(self, capacity: int = 2000, marks: Sequence[str] = MARKS) -> None:
        self.marks = tuple(marks)
        self._rows: deque[dict[str, int]] = deque(maxlen=capacity)
        self._lock = threading.Lock()

    def add(self, marks: Mapping[str, int]) -> None:
        """Keep one frame's chain; ``marks`` missing a name of ``self.marks`` raises ``ValueError`` (a caller bug)."""
        missing = [m for m in self.marks if m not in marks]
        if missing:
            raise ValueError(f"FrameTimeline.add: marks {missing} missing (expected {list(self.marks)})")
        row = {m: int(marks[m]) for m in self.marks}
        with self._lock:
            self._rows.append(row)

    def rows(self) -> list[dict[str, int]]:
        with self._lock:
            return [dict(row) for row in self._rows]

    def __len__(self) -> int:
        with self._lock:
            return len(self._rows)

    def summary(self, tail_fraction: float = 0.05) -> dict:
        return summarise(self.rows(), self.marks, tail_fraction)
