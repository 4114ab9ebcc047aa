"""Bag access: both storage formats, the shared foreign bag, damaged bags read as far as they go, missing topics."""

from __future__ import annotations

import os
import shutil

import numpy as np
import pytest

from perception.cli import main as cli_main
from perception.io.bag_types import typestore
from perception.replay.bag_access import BagError, ReadReport, inspect_bag, message_stamp, read_messages

from_conftest_start = 1_700_000_000 * 1_000_000_000


def test_both_storage_formats_read_back_in_order(small_bag):
    info = inspect_bag(small_bag)
    assert info.storage == small_bag.name.split("_")[1]
    assert {t: i.count for t, i in info.topics.items()} == {"/cam/image": 20, "/cam/note": 20}
    assert info.topics["/cam/image"].msgtype == "sensor_msgs/msg/Image" and not info.damaged
    msgs = list(read_messages(info, ["/cam/image"]))
    assert [m.log_ns for m in msgs] == [from_conftest_start + i * 50_000_000 for i in range(20)]
    assert [message_stamp(m) for m in msgs] == [m.log_ns for m in msgs]
    pixels = [typestore().deserialize_cdr(m.data, m.msgtype).data[0] for m in msgs]
    assert pixels == list(range(20))
    assert info.duration_s == pytest.approx(0.95, abs=1e-6)


def test_missing_topic_lists_the_bag_topics(small_bag):
    info = inspect_bag(small_bag)
    with pytest.raises(BagError) as err:
        list(read_messages(info, ["/cam/image", "/nope"]))
    text = str(err.value)
    assert "/nope not in the bag" in text and "/cam/image (sensor_msgs/msg/Image, 20 msgs)" in text
    assert "/cam/note (std_msgs/msg/String, 20 msgs)" in text


def test_missing_topic_on_the_command_line_exits_2_with_the_listing(small_bag, capsys):
    assert cli_main(["replay", "--bag", str(small_bag), "--topics", "/camera/image_raw"]) == 2
    err = capsys.readouterr().err
    assert "/camera/image_raw not in the bag" in err and "/cam/note" in err and "Traceback" not in err


def test_not_a_bag_is_one_error(tmp_path):
    with pytest.raises(BagError, match="no such bag"):
        inspect_bag(tmp_path / "absent")
    (tmp_path / "junk").mkdir()
    (tmp_path / "junk" / "x.mcap").write_bytes(b"not an mcap file at all")
    with pytest.raises(BagError, match="nothing could be read"):
        inspect_bag(tmp_path / "junk")


def _truncate(path, fraction: float) -> None:
    size = os.path.getsize(path)
    with open(path, "r+b") as fh:
        fh.truncate(int(size * fraction))


def test_truncated_mcap_is_read_up_to_the_damage(tmp_path, bag_factory):
    bag = bag_factory(tmp_path / "bag", "mcap", frames=60, size=(320, 240))
    _truncate(bag / "bag.mcap", 0.5)
    info = inspect_bag(bag)
    assert info.scanned and "truncated" in info.damaged
    report = ReadReport()
    msgs = list(read_messages(info, ["/cam/image"], report))
    assert 5 <= len(msgs) < 60 and report.counts["/cam/image"] == len(msgs)
    assert "truncated" in report.error and "stopped early" in report.describe()
    pixels = [typestore().deserialize_cdr(m.data, m.msgtype).data[0] for m in msgs]
    assert pixels == list(range(len(msgs)))  # what was read is intact and in order


def test_corrupt_sqlite3_is_read_up_to_the_damage(tmp_path, bag_factory):
    bag = bag_factory(tmp_path / "bag", "sqlite3", frames=60, size=(160, 120))
    db = bag / "bag.db3"
    size = os.path.getsize(db)
    with open(db, "r+b") as fh:
        fh.seek(size // 2)
        fh.write(np.random.default_rng(0).integers(0, 256, 64 * 1024, np.uint8).tobytes())
    info = inspect_bag(bag)  # opens (the damage is in the data pages): it shows when the read reaches it
    assert info.storage == "sqlite3"
    report = ReadReport()
    images = [m for m in read_messages(info, None, report) if m.topic == "/cam/image"]
    assert 5 <= len(images) < 60 and "malformed" in report.error
    assert report.describe().startswith(f"read {report.total} messages")


def test_damaged_bag_on_the_command_line_is_reported_without_a_traceback(tmp_path, bag_factory, capsys):
    bag = bag_factory(tmp_path / "bag", "mcap", frames=60, size=(320, 240))
    _truncate(bag / "bag.mcap", 0.02)
    assert cli_main(["eval", "bag", "--bag", str(bag), "--report", str(tmp_path / "r"), "--topic", "/x"]) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err and "cannot read as a rosbag2 bag" in err and "nothing could be read" in err


def test_the_shared_foreign_bag(shared_data):
    bag = shared_data / "bags" / "rosbag2_vtest_mcap"
    info = inspect_bag(bag)
    assert not info.damaged and info.storage == "mcap"
    assert {t: i.count for t, i in info.topics.items()} == {
        "/camera/image_raw": 50, "/camera/image_raw/compressed": 50, "/camera/camera_info": 50}
    store = typestore()
    raw = next(iter(read_messages(info, ["/camera/image_raw"])))
    comp = next(iter(read_messages(info, ["/camera/image_raw/compressed"])))
    image = store.deserialize_cdr(raw.data, raw.msgtype)
    assert (image.width, image.height) == (384, 288) and message_stamp(raw) == message_stamp(comp)
    assert store.deserialize_cdr(comp.data, comp.msgtype).format.startswith(("jpeg", "png", "rgb8"))


def test_a_damaged_copy_of_the_shared_bag(shared_data, tmp_path):
    bag = tmp_path / "copy"
    shutil.copytree(shared_data / "bags" / "rosbag2_vtest_mcap", bag)
    os.chmod(bag / "rosbag2_vtest_mcap.mcap", 0o644)
    _truncate(bag / "rosbag2_vtest_mcap.mcap", 0.5)
    info = inspect_bag(bag)
    report = ReadReport()
    assert 10 < sum(1 for _ in read_messages(info, ["/camera/image_raw"], report)) < 50 and report.error
