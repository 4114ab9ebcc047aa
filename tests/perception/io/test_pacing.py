"""RateLimiter and paced(): a fixed schedule from the start time, loops that keep stamps increasing."""

from __future__ import annotations

import itertools
import time

import numpy as np
import pytest

from perception.io.frame import Frame, SourceError
from perception.io.pacing import RateLimiter, decimated, paced


class FakeClock:
    """A clock whose sleep overshoots by ``overshoot`` seconds, like an OS timer does."""

    def __init__(self, overshoot: float = 0.0) -> None:
        self.now = 100.0
        self.overshoot = overshoot

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds + self.overshoot


class ListSource:
    """A finite source over prepared frames (the simplest FrameSource), re-iterable like the file sources."""

    def __init__(self, n: int, fps: float | None = 10.0) -> None:
        self.name, self.fps, self.n = "list", fps, n

    def __iter__(self):
        for i in range(self.n):
            yield Frame(image=np.full((2, 2, 3), i, np.uint8), stamp_ns=5_000 + i * 100_000_000, seq=i)

    def close(self) -> None:
        pass


def test_schedule_does_not_drift_when_sleep_overshoots():
    clock = FakeClock(overshoot=0.004)
    limiter = RateLimiter(50.0, clock=clock, sleep=clock.sleep)
    released = []
    for _ in range(200):
        limiter.wait()
        released.append(clock.now)
    # tick k is released at t0 + k/50 + overshoot: the 4 ms error never accumulates over 200 ticks
    expected = 100.0 + np.arange(200) / 50.0
    errors = np.array(released) - expected
    assert errors[0] == 0.0 and np.all(errors[1:] <= 0.0041) and np.all(errors[1:] >= 0.0039)


def test_slow_consumer_gets_late_frames_at_once_then_the_schedule_resumes():
    clock = FakeClock()
    limiter = RateLimiter(10.0, max_lag_s=1.0, clock=clock, sleep=clock.sleep)
    limiter.wait()  # t0 = 100.0
    clock.now += 0.35  # the consumer took 350 ms: ticks at 100.1, 100.2, 100.3 are overdue
    lags = [limiter.wait() for _ in range(3)]
    assert lags == pytest.approx([0.25, 0.15, 0.05])
    assert clock.now == pytest.approx(100.35)
    limiter.wait()
    assert clock.now == pytest.approx(100.4)  # back on the original schedule
    assert limiter.late == 2 and limiter.resets == 0


def test_lag_beyond_max_restarts_the_schedule_instead_of_bursting():
    clock = FakeClock()
    limiter = RateLimiter(10.0, max_lag_s=1.0, clock=clock, sleep=clock.sleep)
    limiter.wait()
    clock.now += 5.0
    assert limiter.wait() == pytest.approx(4.9)
    assert limiter.resets == 1
    limiter.wait()
    assert clock.now == pytest.approx(105.1)  # one period after the restart, not a burst of 49 ticks


def test_rate_must_be_positive():
    with pytest.raises(ValueError, match="rate_hz must be > 0"):
        RateLimiter(0.0)


def test_paced_runs_in_real_time_at_the_requested_rate():
    started = time.monotonic()
    frames = list(paced(ListSource(20), rate_hz=100.0))
    elapsed = time.monotonic() - started
    assert len(frames) == 20
    assert 0.185 <= elapsed < 0.4  # 19 periods of 10 ms
    assert max(f.meta["lag_s"] for f in frames) < 0.05


def test_paced_uses_the_source_fps_by_default():
    started = time.monotonic()
    list(paced(ListSource(4, fps=40.0)))
    assert 0.07 <= time.monotonic() - started < 0.3  # 3 periods of 25 ms


def test_source_without_rate_is_not_paced():
    started = time.monotonic()
    assert len(list(paced(ListSource(50, fps=None)))) == 50
    assert time.monotonic() - started < 0.1


def test_loop_keeps_seq_and_stamps_increasing():
    frames = list(itertools.islice(paced(ListSource(3), rate_hz=1000.0, loop=True), 8))
    assert [f.seq for f in frames] == list(range(8))
    assert [int(f.image[0, 0, 0]) for f in frames] == [0, 1, 2, 0, 1, 2, 0, 1]
    assert np.all(np.diff([f.stamp_ns for f in frames]) == 100_000_000)
    assert frames[0].stamp_ns == 5_000


class LiveSource(ListSource):
    """Frames that arrive in real time, every ``interval`` seconds, like a camera's."""

    live = True

    def __init__(self, n: int, interval: float) -> None:
        super().__init__(n, fps=1.0 / interval)
        self.interval = interval

    def __iter__(self):
        for frame in super().__iter__():
            time.sleep(self.interval)
            yield frame


def test_live_source_is_never_delayed():
    started = time.monotonic()
    frames = list(paced(LiveSource(10, 0.01)))  # fps 100: pacing would not slow it, but must not add sleeps either
    assert len(frames) == 10 and time.monotonic() - started < 0.3
    assert all("lag_s" not in f.meta for f in frames)


def test_live_source_above_the_rate_is_decimated_not_queued():
    started = time.monotonic()
    frames = list(paced(LiveSource(40, 0.01), rate_hz=25.0))  # 100 Hz in, 25 Hz out: about every 4th frame
    elapsed = time.monotonic() - started
    assert elapsed < 0.8  # frames were dropped, not delayed (40 x 10 ms of arrivals)
    assert 7 <= len(frames) <= 13
    assert sum(f.meta["dropped_before"] for f in frames) + len(frames) <= 40
    assert [f.seq for f in frames] == sorted(f.seq for f in frames)


def test_decimation_keeps_one_frame_per_slot_exactly():
    clock = FakeClock()

    class Arrivals(ListSource):
        live = True

        def __iter__(self):
            for frame in super().__iter__():
                clock.now += 0.01  # a frame every 10 ms
                yield frame

    frames = list(decimated(Arrivals(20), 25.0, clock=clock))  # 40 ms slots
    assert [f.seq for f in frames] == [0, 4, 8, 12, 16]
    assert [f.meta["dropped_before"] for f in frames] == [0, 3, 3, 3, 3]


def test_looping_an_empty_source_is_an_error():
    with pytest.raises(SourceError, match="cannot loop a source that yielded no frames"):
        list(paced(ListSource(0), loop=True))
