"""Playing a bag back in time: which message goes out when, and what the simulated clock reads meanwhile.

Timing follows ``ros2 bag play``: a message logged at bag time ``t`` is due at wall time ``w0 + (t - t0) / rate``
(``t0`` the first message's log time, ``w0`` the moment playback starts), computed from the start, never by adding
gaps, so sleep overshoot does not accumulate. ``rate = 0`` publishes as fast as the receiver lets it (with an
``after_publish`` hook that waits for the graph, this is "as fast as the graph takes"). The simulated clock
(``/clock`` for ``use_sim_time``) reads ``t0 + (now - w0) * rate`` while waiting, and each message's log time when
it is published, so no message is ever stamped ahead of the clock. With ``loop`` the bag starts over, its times
shifted by one bag span plus one median gap so the clock keeps running forward.

ROS-free: the node (``dualstream_perception.replay_node``) passes callables that publish.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from typing import Callable, Iterable

from perception.replay.bag_access import BagInfo, BagMessage, ReadReport, read_messages

Publish = Callable[[str, BagMessage], None]  # (output topic, message)
Clock = Callable[[int], None]  # simulated time in ns


def parse_remaps(items: Iterable[str]) -> dict[str, str]:
    """``["/a:=/b", ...]`` -> ``{"/a": "/b"}``; ValueError naming the malformed item."""
    out: dict[str, str] = {}
    for item in items:
        if not item:
            continue
        src, sep, dst = item.partition(":=")
        if not sep or not src or not dst:
            raise ValueError(f"remap '{item}': expected FROM:=TO (for example /camera/image_raw:=/cam/image)")
        out[src] = dst
    return out


@dataclass
class PlaybackStats:
    """What a playback did: messages published per (output) topic, loops completed, the read report, and the
    wall seconds it took."""

    published: dict[str, int] = field(default_factory=dict)
    loops: int = 0
    wall_s: float = 0.0
    max_lateness_ms: float = 0.0
    read: ReadReport = field(default_factory=ReadReport)

    def as_dict(self) -> dict:
        return {"published": dict(self.published), "total": sum(self.published.values()), "loops": self.loops,
                "wall_s": round(self.wall_s, 3), "max_lateness_ms": round(self.max_lateness_ms, 2),
                "read_error": self.read.error}


class BagPlayer:
    """``BagPlayer(info, topics=None, rate=1.0, loop=False, remap={}, max_per_topic=0).run(publish, clock, stop)``.

    ``topics`` must exist in the bag (``BagError`` lists what it has). ``clock_period_s`` is how often the clock is
    ticked while waiting for the next message (0: only at each message). ``now``/``sleep`` are injectable for tests.
    """

    def __init__(self, info: BagInfo, topics: Iterable[str] | None = None, rate: float = 1.0, loop: bool = False,
                 remap: dict[str, str] | None = None, max_per_topic: int = 0, clock_period_s: float = 0.01,
                 now: Callable[[], float] = time.monotonic, sleep: Callable[[float], None] = time.sleep) -> None:
        if rate < 0:
            raise ValueError(f"rate must be >= 0 (0: as fast as possible), got {rate}")
        self.info = info
        self.topics = info.require(topics) if topics else sorted(info.topics)
        self.rate = float(rate)
        self.loop = loop
        self.remap = dict(remap or {})
        self.max_per_topic = int(max_per_topic)
        self.clock_period_s = float(clock_period_s)
        self._now, self._sleep = now, sleep
        self.stats = PlaybackStats()

    def output_topic(self, topic: str) -> str:
        return self.remap.get(topic, topic)

    def run(self, publish: Publish, clock: Clock | None = None, stop: threading.Event | None = None,
            after_publish: Callable[[str, BagMessage], None] | None = None) -> PlaybackStats:
        """Play until the bag ends (or ``stop`` is set; with ``loop``, only ``stop`` ends it)."""
        stop = stop or threading.Event()
        clock = clock or (lambda ns: None)
        started = self._now()
        wall0 = bag0 = None
        offset = 0
        while not stop.is_set():
            first = last = None
            gaps: list[int] = []
            counts: dict[str, int] = {}
            self.stats.read = ReadReport()
            for msg in read_messages(self.info, self.topics, self.stats.read):
                if stop.is_set():
                    break
                if self.max_per_topic and counts.get(msg.topic, 0) >= self.max_per_topic:
                    if all(counts.get(t, 0) >= self.max_per_topic for t in self.topics):
                        break
                    continue
                counts[msg.topic] = counts.get(msg.topic, 0) + 1
                t = msg.log_ns + offset
                if last is not None and msg.log_ns > last:
                    gaps.append(msg.log_ns - last)
                first = msg.log_ns if first is None else first
                last = msg.log_ns
                if wall0 is None:
                    wall0, bag0 = self._now(), t
                self._wait_until(wall0 + (t - bag0) / 1e9 / self.rate if self.rate else 0.0, bag0, wall0, clock, stop)
                if stop.is_set():
                    break
                clock(t)
                out = self.output_topic(msg.topic)
                if offset:
                    msg = BagMessage(msg.topic, msg.msgtype, t, msg.data)
                publish(out, msg)
                self.stats.published[out] = self.stats.published.get(out, 0) + 1
                if after_publish is not None:
                    after_publish(out, msg)
            if stop.is_set() or not self.loop or first is None or self.stats.read.error:
                break
            self.stats.loops += 1
            gaps.sort()
            offset += (last - first) + (gaps[len(gaps) // 2] if gaps else 1)
        self.stats.wall_s = self._now() - started
        return self.stats

    def _wait_until(self, due: float, bag0: int, wall0: float, clock: Clock, stop: threading.Event) -> None:
        """Sleep until ``due`` (monotonic seconds), ticking the simulated clock every ``clock_period_s``."""
        if not self.rate:
            return
        while not stop.is_set():
            now = self._now()
            if now >= due:
                self.stats.max_lateness_ms = max(self.stats.max_lateness_ms, (now - due) * 1000.0)
                return
            step = due - now if self.clock_period_s <= 0 else min(due - now, self.clock_period_s)
            self._sleep(step)
            if self.clock_period_s > 0:
                clock(bag0 + int((min(self._now(), due) - wall0) * self.rate * 1e9))
