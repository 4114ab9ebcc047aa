"""Fixtures for the replay tests: small bags written with rosbags (both storage formats) and a short video."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from perception.io.bag_types import typestore
from perception.io.bag_writer import BagWriter
from perception.replay.ground_truth import header

START_NS = 1_700_000_000 * 1_000_000_000


def image_cdr(index: int, stamp_ns: int, width: int = 32, height: int = 24) -> bytes:
    """A rgb8 Image whose pixels encode ``index``."""
    t = typestore().types
    data = np.full((height, width, 3), index % 256, np.uint8).reshape(-1)
    msg = t["sensor_msgs/msg/Image"](header=header(stamp_ns, "cam"), height=height, width=width, encoding="rgb8",
                                     is_bigendian=0, step=width * 3, data=data)
    return bytes(typestore().serialize_cdr(msg, "sensor_msgs/msg/Image"))


def string_cdr(text: str) -> bytes:
    return bytes(typestore().serialize_cdr(typestore().types["std_msgs/msg/String"](data=text), "std_msgs/msg/String"))


def write_small_bag(path: Path, storage: str, frames: int = 20, period_ns: int = 50_000_000,
                    size: tuple[int, int] = (32, 24)) -> Path:
    """``/cam/image`` (Image of ``size``) and ``/cam/note`` (String) every ``period_ns``."""
    with BagWriter(path, storage) as writer:
        writer.add_topic("/cam/image", "sensor_msgs/msg/Image")
        writer.add_topic("/cam/note", "std_msgs/msg/String")
        for i in range(frames):
            stamp = START_NS + i * period_ns
            writer.write("/cam/image", stamp, image_cdr(i, stamp, *size))
            writer.write("/cam/note", stamp + 1, string_cdr(f"note {i}"))
    return path


@pytest.fixture
def bag_factory():
    """``bag_factory(path, storage, frames=20, period_ns=50 ms, size=(32, 24))``."""
    return write_small_bag


@pytest.fixture(params=["mcap", "sqlite3"])
def small_bag(request, tmp_path) -> Path:
    return write_small_bag(tmp_path / f"bag_{request.param}", request.param)


@pytest.fixture
def short_video(tmp_path) -> Path:
    """A 12-frame 64x48 MJPG AVI at 10 fps with a moving bright square, and its MOT gt (one person)."""
    path = tmp_path / "clip.avi"
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 10.0, (64, 48))
    rows = []
    for i in range(12):
        frame = np.full((48, 64, 3), 40, np.uint8)
        frame[10:30, 4 + 3 * i:14 + 3 * i] = 230
        writer.write(frame)
        rows.append(f"{i + 1},7,{4 + 3 * i},10,10,20,1,-1,-1,-1")
    rows.append("3,9,50,2,5,5,0,-1,-1,-1")  # an ignore region on gt frame 3
    writer.release()
    (tmp_path / "gt.txt").write_text("\n".join(rows) + "\n")
    return path
