"""record_node: records live topics into a rosbag2 bag, their types found on the graph (``dualstream record``).

A probe node waits (up to ``discovery_timeout_s``) until every topic in ``topics`` has a publisher and reads its type;
then ``recorder_node.RecorderNode`` records them as raw CDR (``output``, ``storage: mcap | sqlite3``, ``stats_path``,
``ready_path``, ``reliability``, ``depth`` as there). The node stops after ``duration_s`` seconds (0: never) or once
every topic has ``max_messages`` messages (0: no limit), or on Ctrl-C. A topic that never appears is an error naming
it and listing the topics the graph has.
"""

from __future__ import annotations

import sys
import time

import rclpy
from rclpy.node import Node
from rclpy.parameter import Parameter

from dualstream_perception.recorder_node import RecorderNode
from dualstream_perception.spin import run_node


class TopicsNotFound(RuntimeError):
    """Topics asked for that no publisher offers; the message lists the graph's topics."""


def discover_types(probe: Node, topics: list[str], timeout_s: float) -> dict[str, str]:
    """``{resolved topic: "pkg/msg/Name"}`` for every topic, spinning ``probe`` until all are seen or time runs out."""
    names = [probe.resolve_topic_name(t) for t in topics]
    deadline = time.monotonic() + timeout_s
    while True:
        graph = dict(probe.get_topic_names_and_types())
        found = {t: graph[t][0] for t in names if graph.get(t)}
        if len(found) == len(names) or time.monotonic() > deadline:
            break
        rclpy.spin_once(probe, timeout_sec=0.1)
    missing = [t for t in names if t not in found]
    if missing:
        listing = ", ".join(f"{t} ({types[0]})" for t, types in sorted(graph.items()) if types) or "none"
        raise TopicsNotFound(f"no publisher for {', '.join(missing)} after {timeout_s:.0f} s; "
                             f"topics on the graph: {listing}")
    return found


class RecordSession:
    """Builds the recorder once the types are known, and says when recording is finished."""

    def __init__(self) -> None:
        self.started = 0.0
        self.duration_s = 0.0
        self.max_messages = 0

    def make_node(self) -> RecorderNode:
        probe = Node("record_probe")
        try:
            param = lambda key, default: probe.declare_parameter(key, default).value  # noqa: E731
            topics = [t for t in param("topics", [""]) if t]
            if not topics:
                raise TopicsNotFound("parameter 'topics' is empty: name the topics to record")
            types = discover_types(probe, topics, float(param("discovery_timeout_s", 10.0)))
            self.duration_s = float(param("duration_s", 0.0))
            self.max_messages = int(param("max_messages", 0))
        finally:
            probe.destroy_node()
        node = RecorderNode(parameter_overrides=[Parameter("topics", value=list(types)),
                                                 Parameter("types", value=list(types.values()))])
        self.started = time.monotonic()
        return node

    def finished(self, node: RecorderNode) -> bool:
        if self.duration_s > 0 and time.monotonic() - self.started >= self.duration_s:
            return True
        if self.max_messages > 0:
            with node.lock:
                return all(node.counts.get(name, 0) >= self.max_messages for name in node.names.values())
        return False


def main(args=None) -> None:
    session = RecordSession()
    try:
        run_node(session.make_node, args, finished=session.finished)
    except TopicsNotFound as exc:
        print(f"record_node: error: {exc}", file=sys.stderr)
        rclpy.try_shutdown()
        sys.exit(2)


if __name__ == "__main__":
    main()
