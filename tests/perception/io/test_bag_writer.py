"""Bags written from CDR bytes, read back with rosbags; header stamps parsed from raw CDR."""

from __future__ import annotations

import numpy as np
import pytest
from rosbags.rosbag2 import Reader

from perception.io.atomic import atomic_write_text, write_json
from perception.io.bag_types import typestore
from perception.io.bag_writer import BagWriter, header_stamp_ns


def _detections_cdr(sec: int, nanosec: int) -> bytes:
    store = typestore()
    Header = store.types["std_msgs/msg/Header"]
    Time = store.types["builtin_interfaces/msg/Time"]
    Array = store.types["vision_msgs/msg/Detection2DArray"]
    return bytes(store.serialize_cdr(Array(header=Header(stamp=Time(sec=sec, nanosec=nanosec), frame_id="c"),
                                           detections=[]), "vision_msgs/msg/Detection2DArray"))


@pytest.mark.parametrize("storage", ["mcap", "sqlite3"])
def test_written_messages_read_back(tmp_path, storage):
    with BagWriter(tmp_path / "bag", storage) as writer:
        writer.add_topic("/det", "vision_msgs/msg/Detection2DArray")
        for i in range(5):
            writer.write("/det", 1000 + i, _detections_cdr(10 + i, 7))
    assert writer.counts == {"/det": 5}
    store = typestore()
    with Reader(tmp_path / "bag") as reader:
        stamps = [store.deserialize_cdr(raw, conn.msgtype).header.stamp.sec
                  for conn, _, raw in reader.messages()]
    assert stamps == [10, 11, 12, 13, 14]


def test_header_stamp_from_cdr_both_byte_orders():
    cdr = _detections_cdr(1234, 567)
    assert header_stamp_ns(cdr) == 1234 * 10**9 + 567
    big = bytearray(cdr[:12])
    big[1] = 0  # CDR_BE
    big[4:8] = (1234).to_bytes(4, "big")
    big[8:12] = (567).to_bytes(4, "big")
    assert header_stamp_ns(bytes(big)) == 1234 * 10**9 + 567
    assert header_stamp_ns(b"\x00\x01") is None


def test_existing_bag_and_bad_storage_are_refused(tmp_path):
    (tmp_path / "bag").mkdir()
    with pytest.raises(FileExistsError, match="already exists"):
        BagWriter(tmp_path / "bag")
    with pytest.raises(ValueError, match="bag storage 'zip'"):
        BagWriter(tmp_path / "other", "zip")


def test_atomic_writes_leave_no_temporary_files(tmp_path):
    write_json(tmp_path / "a.json", {"x": np.float32(1.5).item()})
    atomic_write_text(tmp_path / "a.json", "replaced")
    assert (tmp_path / "a.json").read_text() == "replaced"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.json"]
