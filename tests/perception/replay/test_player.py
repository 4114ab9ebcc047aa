"""BagPlayer timing on an injected clock: original and scaled timing, as fast as possible, /clock values, loop,
remaps and per-topic caps; and the peak-rate search."""

from __future__ import annotations

import pytest

from perception.replay.bag_access import inspect_bag
from perception.replay.peak_rate import find_peak_rate
from perception.replay.player import BagPlayer, parse_remaps


class FakeTime:
    def __init__(self) -> None:
        self.t = 100.0
        self.slept = 0.0

    def now(self) -> float:
        return self.t

    def sleep(self, s: float) -> None:
        self.t += s
        self.slept += s


def _play(bag, rate, **kwargs):
    clock = FakeTime()
    sent, ticks = [], []
    player = BagPlayer(inspect_bag(bag), rate=rate, now=clock.now, sleep=clock.sleep, **kwargs)
    player.run(lambda topic, msg: sent.append((topic, msg.log_ns, clock.now())), ticks.append)
    return player, sent, ticks, clock


@pytest.mark.parametrize("rate", [1.0, 2.0, 0.5])
def test_messages_go_out_at_their_bag_time_scaled(small_bag, rate):
    _, sent, ticks, _ = _play(small_bag, rate, topics=["/cam/image"])
    t0, w0 = sent[0][1], sent[0][2]
    assert len(sent) == 20
    for _, log_ns, wall in sent:
        assert wall - w0 == pytest.approx((log_ns - t0) / 1e9 / rate, abs=1e-6)
    assert sent[-1][2] - w0 == pytest.approx(0.95 / rate, abs=1e-6)


def test_clock_runs_with_bag_time_and_never_behind_a_message(small_bag):
    _, sent, ticks, _ = _play(small_bag, 2.0, clock_period_s=0.005)
    assert ticks == sorted(ticks), "the simulated clock goes backwards"
    assert ticks[0] == sent[0][1] and ticks[-1] == sent[-1][1]
    assert len(ticks) > 2 * len(sent)  # ticks between messages, not only at them
    for _, log_ns, _ in sent:
        assert log_ns in ticks  # the clock reads each message's time when it goes out


def test_rate_zero_never_sleeps(small_bag):
    _, sent, _, clock = _play(small_bag, 0.0)
    assert len(sent) == 40 and clock.slept == 0.0


def test_loop_shifts_time_forward_and_stop_ends_it(small_bag):
    import threading

    stop = threading.Event()
    clock = FakeTime()
    sent = []

    def publish(topic, msg):
        sent.append(msg.log_ns)
        if len(sent) == 45:
            stop.set()

    player = BagPlayer(inspect_bag(small_bag), ["/cam/image"], rate=1.0, loop=True, now=clock.now, sleep=clock.sleep)
    stats = player.run(publish, None, stop)
    assert len(sent) == 45 and stats.loops == 2 and sent == sorted(sent)
    assert sent[20] - sent[19] == 50_000_000  # one median gap between the passes


def test_remap_and_cap(small_bag):
    player, sent, _, _ = _play(small_bag, 0.0, remap=parse_remaps(["/cam/image:=/other/image"]), max_per_topic=3)
    assert [t for t, _, _ in sent] == ["/other/image", "/cam/note"] * 3
    assert player.stats.published == {"/other/image": 3, "/cam/note": 3}


def test_bad_remap_and_rate_are_errors(small_bag):
    with pytest.raises(ValueError, match="FROM:=TO"):
        parse_remaps(["/a=/b"])
    with pytest.raises(ValueError, match="rate must be >= 0"):
        BagPlayer(inspect_bag(small_bag), rate=-1)


def test_peak_search_finds_the_highest_sustained_rate():
    capacity = 11.0  # a graph that keeps up to 11 Hz and drops the excess above
    search = find_peak_rate(lambda r: max(0.0, 1.0 - capacity / r), start_hz=2.0, refine_steps=3)
    assert [r for r, _ in search.tried[:4]] == [2.0, 4.0, 8.0, 16.0]
    assert 8.0 < search.peak_rate_hz <= capacity / 0.95
    assert all(d < 0.05 for r, d in search.tried if r <= search.peak_rate_hz)


def test_peak_search_when_even_the_first_rate_fails():
    assert find_peak_rate(lambda r: 0.5, start_hz=2.0).peak_rate_hz is None
