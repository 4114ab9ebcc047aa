"""replay_node: publishes a rosbag2 bag (mcap or sqlite3) with its original timing, and ``/clock`` for use_sim_time.

The timing and the bag reading are the core's (``perception.replay.player.BagPlayer``); this node only creates a
publisher per topic (the bag's types, published as the raw CDR the bag holds) and publishes.

Parameters: ``bag``; ``topics`` (empty: all); ``remap`` (``["/from:=/to", ...]``, applied to the bag's topic names);
``rate`` (1.0 original timing, 2.0 twice as fast, 0 as fast as possible); ``loop``; ``clock`` (publish ``/clock``)
and ``clock_hz`` (its rate while waiting between messages); ``max_per_topic`` (0: all); ``wait_for_subscribers``
(hold the first message until every image topic has this many subscribers, up to ``wait_timeout_s``) and
``start_delay_s``; ``ack_topic``/``ack_type``/``ack_timeout_s``: after each image, wait until a message with the
same header stamp arrives on ``ack_topic`` (the graph's output), so ``rate: 0`` plays as fast as the graph takes;
``publish_log`` (JSON lines: topic, header stamp, log time, wall time of each stamped message), ``stats_path``
(JSON summary at the end), ``reliability``/``depth`` of the publishers, ``exit_at_end``.
"""

from __future__ import annotations

import json
import sys
import threading
import time

from rclpy.node import Node
from rclpy.qos import QoSProfile, ReliabilityPolicy
from rosgraph_msgs.msg import Clock

from dualstream_perception.qos import image_qos
from dualstream_perception.recorder_node import import_message
from dualstream_perception.spin import run_node
from perception.io.atomic import write_json
from perception.io.bag import IMAGE_TYPES
from perception.io.bag_writer import header_stamp_ns
from perception.replay.bag_access import BagError, BagMessage, has_header, inspect_bag
from perception.replay.player import BagPlayer, parse_remaps


class ReplayNode(Node):
    def __init__(self, name: str = "replay_node", **kwargs) -> None:
        super().__init__(name, **kwargs)
        param = lambda key, default: self.declare_parameter(key, default).value  # noqa: E731
        bag = param("bag", "")
        topics = [t for t in param("topics", [""]) if t]
        remap = parse_remaps(param("remap", [""]))
        rate, loop = float(param("rate", 1.0)), bool(param("loop", False))
        self.clock_on, clock_hz = bool(param("clock", True)), float(param("clock_hz", 100.0))
        self.wait_subs, self.wait_timeout = int(param("wait_for_subscribers", 0)), float(param("wait_timeout_s", 10.0))
        self.start_delay = float(param("start_delay_s", 0.0))
        ack_topic, ack_type = param("ack_topic", ""), param("ack_type", "vision_msgs/msg/Detection2DArray")
        self.ack_timeout = float(param("ack_timeout_s", 5.0))
        self.ack_wait = bool(param("ack_wait", True))  # false: only count the answers (peak-rate trials)
        self.log_path, self.stats_path = param("publish_log", ""), param("stats_path", "")
        self.exit_at_end = bool(param("exit_at_end", True))
        qos = image_qos(param("reliability", "reliable"), int(param("depth", 10)))
        if not bag:
            raise BagError("replay_node: parameter 'bag' is empty; give the bag folder")
        info = inspect_bag(bag)
        if info.damaged:
            self.get_logger().warning(f"{bag} is damaged: {info.damaged}; replaying what can be read")
        self.player = BagPlayer(info, self._publishable(info, topics or sorted(info.topics)), rate, loop, remap,
                                int(param("max_per_topic", 0)), 1.0 / clock_hz if clock_hz > 0 else 0.0)
        self.pubs = {t: self.create_publisher(import_message(info.topics[t].msgtype), self.player.output_topic(t), qos)
                     for t in self.player.topics}
        self.stamped = {t: has_header(info.topics[t].msgtype) for t in self.player.topics}  # loads types now
        self.image_outputs = {self.player.output_topic(t) for t in self.player.topics
                              if info.topics[t].msgtype in IMAGE_TYPES}
        self.clock_pub = self.create_publisher(Clock, "/clock", QoSProfile(depth=10,
                                                                           reliability=ReliabilityPolicy.RELIABLE))
        self.acks: set[int] = set()
        self.ack_cond = threading.Condition()
        self.ack_timeouts = 0
        self.sent: list[int] = []
        self.ack_sub = (self.create_subscription(import_message(ack_type), ack_topic, self._on_ack, qos, raw=True)
                        if ack_topic else None)
        self.done = False
        self.failed = ""
        self._stop = threading.Event()
        self._log = open(self.log_path, "w") if self.log_path else None  # noqa: SIM115 - closed in _play
        self._thread = threading.Thread(target=self._play, name="replay", daemon=True)
        self._thread.start()
        self.get_logger().info(f"replaying {bag} ({info.storage}, {len(self.pubs)} topics) at rate "
                               f"{rate or 'as fast as possible'}{' in a loop' if loop else ''}")

    def _publishable(self, info, topics: list[str]) -> list[str]:
        """The topics whose message type is installed; the others are skipped with a warning naming them."""
        keep = []
        for topic in info.require(topics):
            try:
                import_message(info.topics[topic].msgtype)
                keep.append(topic)
            except ValueError as exc:
                self.get_logger().warning(f"{topic} skipped: {exc}")
        if not keep:
            raise BagError(f"{info.path}: none of the topics {topics} has an installed message type")
        return keep

    def _on_ack(self, data: bytes) -> None:
        with self.ack_cond:
            self.acks.add(header_stamp_ns(data) or 0)
            self.ack_cond.notify_all()

    def _wait_for_graph(self) -> None:
        deadline = time.monotonic() + self.wait_timeout
        pubs = [self.pubs[t] for t in self.pubs if self.player.output_topic(t) in self.image_outputs]
        while time.monotonic() < deadline and not self._stop.is_set():
            subs_ok = all(p.get_subscription_count() >= self.wait_subs for p in pubs)
            ack_ok = self.ack_sub is None or self.ack_sub.get_publisher_count() > 0
            if subs_ok and ack_ok:
                return
            time.sleep(0.05)
        self.get_logger().warning(f"not every subscriber matched after {self.wait_timeout:.0f} s; starting anyway")

    def _send(self, topic: str, msg: BagMessage) -> None:
        self.pubs[msg.topic].publish(msg.data)
        stamp = header_stamp_ns(msg.data) if self.stamped[msg.topic] else None
        if self._log is not None and stamp is not None:
            self._log.write(json.dumps({"topic": topic, "stamp_ns": stamp, "log_ns": msg.log_ns,
                                        "wall_ns": time.time_ns()}) + "\n")

    def _tick(self, ns: int) -> None:
        if self.clock_on:
            msg = Clock()
            msg.clock.sec, msg.clock.nanosec = divmod(int(ns), 1_000_000_000)
            self.clock_pub.publish(msg)

    def _after_send(self, topic: str, msg: BagMessage) -> None:
        """With an ack topic: wait until the graph has answered this image (same header stamp)."""
        if self.ack_sub is None or topic not in self.image_outputs:
            return
        stamp = header_stamp_ns(msg.data) or 0
        self.sent.append(stamp)
        if not self.ack_wait:
            return
        with self.ack_cond:
            if not self.ack_cond.wait_for(lambda: stamp in self.acks or self._stop.is_set(), self.ack_timeout):
                self.ack_timeouts += 1
            self.acks.discard(stamp)

    def _count_acks(self) -> int:
        """How many of the images sent were answered (waiting up to ``ack_timeout_s`` for the last ones)."""
        sent = set(self.sent)
        with self.ack_cond:
            if not self.ack_wait:
                self.ack_cond.wait_for(lambda: sent <= self.acks or self._stop.is_set(), self.ack_timeout)
            return len(sent & self.acks) if not self.ack_wait else len(sent) - self.ack_timeouts

    def _play(self) -> None:
        try:
            if self.wait_subs or self.ack_sub is not None:
                self._wait_for_graph()
            time.sleep(self.start_delay)
            stats = self.player.run(self._send, self._tick, self._stop, self._after_send)
            acked = self._count_acks() if self.ack_sub is not None else None
            if stats.read.error:
                self.get_logger().error(f"bag damaged: {stats.read.describe()}")
            self.get_logger().info(f"replay finished: {stats.as_dict()}")
            if self.stats_path:
                write_json(self.stats_path, {**stats.as_dict(), "ack_timeouts": self.ack_timeouts,
                                             "acked": acked})
        except Exception as exc:  # noqa: BLE001 - reported and turned into the exit status, never a silent end
            self.failed = f"{type(exc).__name__}: {exc}"
            self.get_logger().error(f"replay failed: {self.failed}")
        finally:
            if self._log is not None:
                self._log.close()
            self.done = True

    def close(self) -> None:
        self._stop.set()
        with self.ack_cond:
            self.ack_cond.notify_all()
        self._thread.join(timeout=5.0)


def main(args=None) -> None:
    nodes: list[ReplayNode] = []

    def make() -> ReplayNode:
        nodes.append(ReplayNode())
        return nodes[-1]

    try:
        run_node(make, args, finished=lambda node: node.done and node.exit_at_end)
    except (BagError, ValueError) as exc:
        print(f"replay_node: error: {exc}", file=sys.stderr)
        sys.exit(2)
    if nodes and nodes[0].failed:
        sys.exit(1)


if __name__ == "__main__":
    main()
