"""Real-time pacing of a frame source: replay a file or bag at its own rate, or at a chosen one.

Frame ``k`` is due at ``t0 + k / rate`` on the monotonic clock, with ``t0`` taken when the first frame is released:
the schedule is computed from the start time, never by adding a period to the previous wake-up, so sleep overshoot
does not accumulate (no drift). A consumer that falls behind gets the late frames immediately until it catches up;
when it is more than ``max_lag_s`` behind, the schedule restarts from now instead of bursting through the backlog.

Live sources (``source.live`` true: cameras, network streams) already arrive in real time; sleeping on them would only
let frames queue up in the driver and add latency. They pass through unpaced, and a ``rate_hz`` below their rate
decimates them (a frame is dropped when it arrives before its slot), never delays them.
"""

from __future__ import annotations

import dataclasses
import time
from typing import Callable, Iterator

from perception.io.frame import Frame, FrameSource, SourceError


class RateLimiter:
    """Releases ticks at ``rate_hz`` on a fixed schedule from the first ``wait()``.

    ``clock`` and ``sleep`` default to ``time.monotonic`` and ``time.sleep``. ``late`` counts ticks released after
    their due time by more than half a period; ``resets`` counts schedule restarts after a lag over ``max_lag_s``.
    """

    def __init__(self, rate_hz: float, max_lag_s: float = 1.0,
                 clock: Callable[[], float] = time.monotonic, sleep: Callable[[float], None] = time.sleep) -> None:
        if not rate_hz > 0:
            raise ValueError(f"rate_hz must be > 0, got {rate_hz}")
        self.period = 1.0 / float(rate_hz)
        self.max_lag_s = float(max_lag_s)
        self._clock = clock
        self._sleep = sleep
        self._t0: float | None = None
        self._k = 0
        self.late = 0
        self.resets = 0

    def due(self) -> float:
        """Monotonic time at which the next tick is due (``now`` before the first tick)."""
        return self._clock() if self._t0 is None else self._t0 + self._k * self.period

    def wait(self) -> float:
        """Sleep until the next tick is due; return how late it was released (seconds, >= 0)."""
        now = self._clock()
        if self._t0 is None:
            self._t0 = now
        due = self._t0 + self._k * self.period
        if due > now:
            self._sleep(due - now)
            now = self._clock()
        lag = max(0.0, now - due)
        if lag > 0.5 * self.period:
            self.late += 1
        if lag > self.max_lag_s:
            self._t0, self._k = now, 0
            self.resets += 1
        self._k += 1
        return lag

    def reset(self) -> None:
        self._t0, self._k = None, 0


def _looped(source: FrameSource, loop: bool) -> Iterator[Frame]:
    """The source's frames, over and over when ``loop``; seq and stamps keep increasing across passes."""
    seq0 = 0
    offset_ns = 0
    while True:
        count = 0
        first_ns = last_ns = 0
        for frame in source:
            if count == 0:
                first_ns = frame.stamp_ns
            last_ns = frame.stamp_ns
            count += 1
            if seq0 or offset_ns:
                frame = dataclasses.replace(frame, seq=frame.seq + seq0, stamp_ns=frame.stamp_ns + offset_ns)
            yield frame
        if not loop:
            return
        if count == 0:
            raise SourceError(f"{source.name}: cannot loop a source that yielded no frames")
        period_ns = int(round(1e9 / source.fps)) if source.fps else 1
        seq0 += count
        offset_ns += last_ns - first_ns + period_ns  # the next pass starts one period after this one ended


def decimated(source: FrameSource, rate_hz: float, clock: Callable[[], float] = time.monotonic) -> Iterator[Frame]:
    """Frames of a live source at no more than ``rate_hz``: frame slots at ``t0 + k / rate_hz``, one frame per slot,
    frames arriving before the next free slot are dropped (``meta["dropped_before"]`` counts them)."""
    period = 1.0 / rate_hz
    t0: float | None = None
    next_slot = 0
    dropped = 0
    for frame in source:
        now = clock()
        if t0 is None:
            t0 = now
        slot = int((now - t0) / period + 1e-9)
        if slot < next_slot:
            dropped += 1
            continue
        next_slot = slot + 1
        frame.meta["dropped_before"] = dropped
        dropped = 0
        yield frame


def paced(source: FrameSource, rate_hz: float | None = None, loop: bool = False, max_lag_s: float = 1.0,
          limiter: RateLimiter | None = None) -> Iterator[Frame]:
    """Yield the frames of ``source`` in real time.

    ``rate_hz`` ``None`` or 0 uses ``source.fps``; a source without a rate then yields unpaced. ``loop`` replays a
    finite source forever (a source that loops by itself is left to do so). Each frame's ``meta["lag_s"]`` says how
    late it was released. Live sources (``source.live``) are never delayed: see ``decimated``.
    """
    if getattr(source, "live", False):
        yield from (decimated(source, rate_hz) if rate_hz else iter(source))
        return
    rate = rate_hz or source.fps
    if limiter is None and rate:
        limiter = RateLimiter(rate, max_lag_s=max_lag_s)
    for frame in _looped(source, loop):
        if limiter is not None:
            frame.meta["lag_s"] = limiter.wait()
        yield frame
