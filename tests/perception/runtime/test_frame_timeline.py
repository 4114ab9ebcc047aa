"""FrameTimeline: per-frame chains of marks, per-step percentiles and where the slowest frames lost their time."""

from __future__ import annotations

import threading
import time

import pytest

from perception.bench.ros_graph import joined_timeline
from perception.runtime.frame_timeline import MARKS, FrameTimeline, now_ns, summarise

MS = 1_000_000


def chain(start: int, gaps_ms) -> dict[str, int]:
    marks, t = {}, start
    for name, gap in zip(MARKS, [0, *gaps_ms]):
        t += int(gap * MS)
        marks[name] = t
    return marks


def test_steps_and_tail_point_at_the_slow_step():
    timeline = FrameTimeline(capacity=100)
    for i in range(19):  # 19 ordinary frames: 2 + 1 + 20 + 0 + 10 = 33 ms
        timeline.add(chain(i * 33 * MS, [2, 1, 20, 0, 10]))
    timeline.add(chain(10_000 * MS, [2, 1, 90, 0, 10]))  # one frame whose encode stalled
    summary = timeline.summary(tail_fraction=0.05)
    assert summary["frames"] == 20
    steps = summary["steps_ms"]
    assert list(steps) == ["stamp->received", "received->taken", "taken->encoded", "encoded->finishing",
                           "finishing->published"]
    assert steps["taken->encoded"]["p50"] == pytest.approx(20.0)
    assert steps["taken->encoded"]["mean"] == pytest.approx((19 * 20 + 90) / 20, abs=0.01)
    assert steps["stamp->received"]["p99"] == pytest.approx(2.0)
    assert summary["total_ms"]["p50"] == pytest.approx(33.0) and summary["total_ms"]["max"] == pytest.approx(103.0)
    tail = summary["tail"]
    assert tail["frames"] == 1 and tail["from_ms"] == pytest.approx(103.0)
    assert tail["steps_mean_ms"]["taken->encoded"] == pytest.approx(90.0)
    assert tail["steps_mean_ms"]["finishing->published"] == pytest.approx(10.0)


def test_capacity_bounds_memory_and_incomplete_chains_are_refused():
    timeline = FrameTimeline(capacity=5)
    for i in range(12):
        timeline.add(chain(i * MS, [1, 1, 1, 1, 1]))
    assert len(timeline) == 5 and timeline.rows()[0]["stamp"] == 7 * MS  # the newest five
    with pytest.raises(ValueError, match="encoded"):
        timeline.add({name: 0 for name in MARKS if name != "encoded"})
    assert summarise([]) == {"frames": 0}


def test_adds_from_several_threads_are_all_kept():
    timeline = FrameTimeline(capacity=10_000)

    def producer(offset: int) -> None:
        for i in range(500):
            timeline.add(chain(offset + i, [1, 1, 1, 1, 1]))

    threads = [threading.Thread(target=producer, args=(k * 10**9,)) for k in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(timeline) == 2000


def test_join_with_downstream_receipts_by_stamp():
    rows = [chain(s * 100 * MS, [1, 1, 10, 0, 5]) for s in range(1, 5)]
    perception = {"timeline_rows": rows}
    receipts = [[row["stamp"], row["published"] + 2 * MS] for row in rows[:3]]  # the 4th frame never arrived
    joined = joined_timeline(perception, receipts)
    assert joined["frames"] == 3
    assert joined["steps_ms"]["published->delivered"]["p50"] == pytest.approx(2.0)
    assert joined["total_ms"]["p50"] == pytest.approx(19.0)
    assert joined_timeline({}, receipts) == {"frames": 0}


def test_clock_is_wall_clock_nanoseconds():
    before = time.time_ns()
    assert before <= now_ns() <= time.time_ns()
