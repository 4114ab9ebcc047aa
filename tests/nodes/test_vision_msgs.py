"""The vision_msgs subset built from interfaces/ has upstream's fields, and rosbags agrees on its type hashes."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

vision_msgs = pytest.importorskip("vision_msgs.msg")

from perception.io.bag_types import VISION_MSGS, typestore  # noqa: E402

REPO = Path(__file__).resolve().parents[2]
MSG_DIR = REPO / "interfaces" / "vision_msgs" / "msg"


def _fields(text: str) -> list[str]:
    lines = [re.sub(r"#.*", "", line).strip() for line in text.splitlines()]
    return [" ".join(line.split()) for line in lines if line]


def test_message_sources_match_the_bag_type_definitions():
    assert sorted(p.stem for p in MSG_DIR.glob("*.msg")) == sorted(n.split("/")[-1] for n in VISION_MSGS)
    for name, text in VISION_MSGS.items():
        assert _fields((MSG_DIR / f"{name.split('/')[-1]}.msg").read_text()) == _fields(text), name


def test_upstream_4x_field_layout():
    det = vision_msgs.Detection2D()
    assert list(det.get_fields_and_field_types()) == ["header", "results", "bbox", "id"]
    assert list(vision_msgs.ObjectHypothesisWithPose.get_fields_and_field_types()) == ["hypothesis", "pose"]
    assert vision_msgs.ObjectHypothesis.get_fields_and_field_types() == {"class_id": "string", "score": "double"}
    assert list(vision_msgs.BoundingBox2D.get_fields_and_field_types()) == ["center", "size_x", "size_y"]
    assert list(vision_msgs.Pose2D.get_fields_and_field_types()) == ["position", "theta"]


def test_built_type_hashes_equal_the_ones_rosbags_computes():
    share = Path(vision_msgs.__file__).resolve().parents[5] / "share" / "vision_msgs" / "msg"
    if not share.is_dir():
        pytest.skip(f"vision_msgs type descriptions not found at {share} (system install)")
    store = typestore()
    for name in VISION_MSGS:
        described = json.loads((share / f"{name.split('/')[-1]}.json").read_text())
        built = next(t["hash_string"] for t in described["type_hashes"] if t["type_name"] == name)
        assert store.hash_rihs01(name) == built, name
