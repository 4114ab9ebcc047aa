"""The shipped Foxglove layout: valid JSON whose panels all sit in the layout tree and show the demo's topics."""

from __future__ import annotations

import json
import re
from pathlib import Path

from perception.commands.demo import OUTPUT_TOPICS

LAYOUT = Path(__file__).resolve().parents[3] / "config" / "foxglove_layout.json"


def _leaves(node) -> list[str]:
    if isinstance(node, str):
        return [node]
    assert set(node) >= {"first", "second", "direction"}, node
    return _leaves(node["first"]) + _leaves(node["second"])


def test_layout_panels_and_topics():
    layout = json.loads(LAYOUT.read_text())
    assert sorted(_leaves(layout["layout"])) == sorted(layout["configById"])
    text = json.dumps(layout["configById"])
    topics = set(re.findall(r'"(/[a-z_/]+?)(?:\.[a-z.]+)?"', text)) - {"/camera/camera_info"}
    assert topics and topics <= set(OUTPUT_TOPICS), topics - set(OUTPUT_TOPICS)
    assert {"/camera/debug/image", "/camera/detections", "/diagnostics"} <= topics
