"""recorder_node: records topics into a rosbag2 bag (mcap or sqlite3) as raw CDR and measures their latency.

Parameters: ``topics`` (names, relative or absolute), ``types`` (``pkg/msg/Name`` for each topic), ``output`` (bag
folder, must not exist), ``storage`` (mcap | sqlite3), ``stats_path`` (JSON written on shutdown: per topic count, rate
and latency percentiles from the message's header stamp to its receipt here, over the last 100,000 messages; and
``receipts``, ``[stamp_ns, receipt_ns]`` of the last 10,000, for joining with a sender's own timeline), ``reliability``
of the subscriptions.
"""

from __future__ import annotations

import importlib
import threading
import time
from collections import defaultdict, deque

from rclpy.node import Node

from dualstream_perception.qos import image_qos
from dualstream_perception.spin import run_node
from perception.io.atomic import write_json
from perception.io.bag_writer import BagWriter, header_stamp_ns
from perception.runtime.stats import percentiles


def import_message(type_name: str):
    """``"sensor_msgs/msg/Image"`` -> the generated Python class; ValueError naming the type when unknown."""
    parts = type_name.split("/")
    if len(parts) != 3 or parts[1] != "msg":
        raise ValueError(f"message type '{type_name}': expected package/msg/Name")
    try:
        return getattr(importlib.import_module(f"{parts[0]}.msg"), parts[2])
    except (ImportError, AttributeError) as exc:
        raise ValueError(f"message type '{type_name}' is not installed ({exc})") from exc


class RecorderNode(Node):
    def __init__(self, name: str = "recorder_node", **kwargs) -> None:
        super().__init__(name, **kwargs)
        topics = list(self.declare_parameter("topics", [""]).value)
        types = list(self.declare_parameter("types", [""]).value)
        output = self.declare_parameter("output", "").value
        storage = self.declare_parameter("storage", "mcap").value
        self.stats_path = self.declare_parameter("stats_path", "").value
        self.ready_path = self.declare_parameter("ready_path", "").value
        reliability = self.declare_parameter("reliability", "reliable").value
        depth = self.declare_parameter("depth", 50).value
        topics = [t for t in topics if t]
        types = [t for t in types if t]
        if len(topics) != len(types):
            raise ValueError(f"recorder: {len(topics)} topics but {len(types)} types; give one type per topic")
        self.writer = BagWriter(output, storage) if output else None
        self.lock = threading.Lock()
        self.latencies: dict[str, deque[float]] = defaultdict(lambda: deque(maxlen=100_000))
        self.receipts: dict[str, deque[tuple[int, int]]] = defaultdict(lambda: deque(maxlen=10_000))
        self.first: dict[str, float] = {}
        self.last: dict[str, float] = {}
        self.counts: dict[str, int] = defaultdict(int)
        qos = image_qos(reliability, depth)
        self.subs = []
        for topic, type_name in zip(topics, types):
            sub = self.create_subscription(import_message(type_name), topic,
                                           lambda data, t=topic: self._on_message(t, data), qos, raw=True)
            if self.writer is not None:
                self.writer.add_topic(sub.topic_name, type_name)
            self.subs.append(sub)
        self.names = {topic: sub.topic_name for topic, sub in zip(topics, self.subs)}
        self.get_logger().info(f"recording {sorted(self.names.values())} to {output or '(nowhere: stats only)'}")
        self.ready = False
        self.ready_timer = self.create_timer(0.1, self._check_ready)

    def _check_ready(self) -> None:
        """Once every recorded topic has a matched publisher, say so (log, and ``ready_path`` when set)."""
        if self.ready or any(sub.get_publisher_count() == 0 for sub in self.subs):
            return
        self.ready = True
        self.ready_timer.cancel()
        self.get_logger().info("every recorded topic has a publisher")
        if self.ready_path:
            write_json(self.ready_path, {"topics": sorted(self.names.values())})

    def _on_message(self, topic: str, data: bytes) -> None:
        now_ns = time.time_ns()
        stamp = header_stamp_ns(data)
        name = self.names.get(topic, topic)
        with self.lock:
            self.counts[name] += 1
            self.first.setdefault(name, now_ns / 1e9)
            self.last[name] = now_ns / 1e9
            if stamp:
                self.latencies[name].append((now_ns - stamp) / 1e6)
                self.receipts[name].append((stamp, now_ns))
            if self.writer is not None:
                self.writer.write(name, now_ns, data)

    def stats(self) -> dict:
        with self.lock:
            out = {}
            for name in self.names.values():
                count = self.counts.get(name, 0)
                span = self.last.get(name, 0.0) - self.first.get(name, 0.0)
                out[name] = {
                    "count": count,
                    "rate_hz": (count - 1) / span if count > 1 and span > 0 else 0.0,
                    "latency_ms": percentiles(self.latencies.get(name, [])),
                    "receipts": [list(pair) for pair in self.receipts.get(name, [])],
                }
            return out

    def close(self) -> None:
        with self.lock:
            if self.writer is not None:
                self.writer.close()
                self.writer = None
        if self.stats_path:
            write_json(self.stats_path, self.stats())


def main(args=None) -> None:
    run_node(RecorderNode, args)


if __name__ == "__main__":
    main()
