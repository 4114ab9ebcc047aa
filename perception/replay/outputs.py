"""Reading what the graph produced back from the recorded bag: detections and diagnostics with receipt times.

The recorder stores each message with its receipt wall time as the log time, so latency and time series come straight
from the bag. Diagnostics values (strings in ``diagnostic_msgs/KeyValue``) are turned into numbers where they are
numbers and booleans; other values (statuses, device names) stay text.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from perception.io.bag_types import typestore
from perception.replay.bag_access import ReadReport, inspect_bag, read_messages
from perception.replay.eval_graph import DETECTIONS_TOPIC
from perception.replay.ground_truth import parse_detections
from perception.replay.scoring import Output

DIAGNOSTICS = "diagnostic_msgs/msg/DiagnosticArray"


@dataclass
class GraphOutputs:
    """``detections``: ``(stamp_ns, Output)`` in receipt order; ``diagnostics``: ``{"wall_ns", "level",
    "message", "values"}`` of the perception node's status; ``read``: what the bag read got."""

    detections: list[tuple[int, Output]] = field(default_factory=list)
    diagnostics: list[dict] = field(default_factory=list)
    read: ReadReport = field(default_factory=ReadReport)

    def window(self, start_ns: int, end_ns: int) -> tuple[dict[int, Output], list[dict]]:
        """Outputs received in ``[start_ns, end_ns]`` (one replay trial), detections keyed by stamp."""
        dets = {stamp: out for stamp, out in self.detections if start_ns <= out.received_ns <= end_ns}
        diags = [d for d in self.diagnostics if start_ns <= d["wall_ns"] <= end_ns]
        return dets, diags


def _number(text: str) -> float | str:
    lowered = text.strip().lower()
    if lowered in ("true", "false"):
        return 1.0 if lowered == "true" else 0.0
    try:
        return float(text)
    except ValueError:
        return text


def read_outputs(bag: str | Path, detections_topic: str = DETECTIONS_TOPIC) -> GraphOutputs:
    """Everything recorded in ``bag`` (``/eval/detections`` and ``/diagnostics``)."""
    info = inspect_bag(bag)
    result = GraphOutputs()
    store = typestore()
    for msg in read_messages(info, None, result.read):
        if msg.topic == detections_topic:
            stamp, boxes, scores, ids, _ = parse_detections(msg.data)
            result.detections.append((stamp, Output(boxes, scores, ids, msg.log_ns)))
        elif msg.msgtype == DIAGNOSTICS:
            array = store.deserialize_cdr(msg.data, DIAGNOSTICS)
            for status in array.status:
                if "perception" not in status.name:
                    continue
                result.diagnostics.append({
                    "wall_ns": msg.log_ns, "level": int(status.level[0] if hasattr(status.level, "__len__")
                                                        else status.level),
                    "message": status.message, "values": {kv.key: _number(kv.value) for kv in status.values}})
    return result
