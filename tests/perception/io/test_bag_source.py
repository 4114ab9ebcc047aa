"""BagSource on rosbag2 bags written in the test with rosbags' Writer (sqlite3 and mcap), and on the shared bag."""

from __future__ import annotations

import itertools
import logging

import cv2
import numpy as np
import pytest
from rosbags.rosbag2 import StoragePlugin, Writer
from rosbags.typesys import Stores, get_typestore

from perception.io.bag import BagSource, is_bag
from perception.io.frame import SourceError

TYPES = get_typestore(Stores.LATEST)
Image = TYPES.types["sensor_msgs/msg/Image"]
CompressedImage = TYPES.types["sensor_msgs/msg/CompressedImage"]
CameraInfo = TYPES.types["sensor_msgs/msg/CameraInfo"]
Header = TYPES.types["std_msgs/msg/Header"]
Time = TYPES.types["builtin_interfaces/msg/Time"]
T0 = 1_700_000_000_000_000_000
W, H = 24, 16


def picture(i: int) -> np.ndarray:
    """An RGB test picture: a horizontal ramp plus a per-frame offset, so both pixel order and frame are checkable."""
    ramp = np.linspace(0, 200, W, dtype=np.float32)[None, :, None]
    img = np.broadcast_to(ramp, (H, W, 3)).copy()
    img[..., 1] = 30 + 10 * i
    img[..., 2] = 255 - img[..., 0]
    return img.astype(np.uint8)


def header(i: int, stamp_ns: int | None = None, frame_id: str = "cam_optical_frame"):
    stamp = T0 + i * 50_000_000 if stamp_ns is None else stamp_ns
    return Header(stamp=Time(sec=stamp // 1_000_000_000, nanosec=stamp % 1_000_000_000), frame_id=frame_id)


def raw_message(i: int, encoding: str, pad: int = 0, bigendian: bool = False, **kw):
    rgb = picture(i)
    if encoding in ("rgb8", "bgr8", "rgba8", "bgra8"):
        order = {"rgb8": [0, 1, 2], "bgr8": [2, 1, 0], "rgba8": [0, 1, 2], "bgra8": [2, 1, 0]}[encoding]
        pixels = rgb[:, :, order]
        if encoding.endswith("a8"):
            pixels = np.concatenate([pixels, np.full((H, W, 1), 77, np.uint8)], axis=2)
    elif encoding == "mono8":
        pixels = rgb[:, :, :1]
    else:  # mono16: the 8-bit value in the high byte
        pixels = (rgb[:, :, :1].astype(np.uint16) << 8) | 0x5A
        pixels = pixels.astype(">u2" if bigendian else "<u2").view(np.uint8).reshape(H, W, 2)
    rows = pixels.reshape(H, -1)
    step = rows.shape[1] + pad
    data = np.zeros((H, step), np.uint8)
    data[:, : rows.shape[1]] = rows
    return Image(header=header(i, **kw), height=H, width=W, encoding=encoding, is_bigendian=int(bigendian),
                 step=step, data=data.reshape(-1))


def compressed_message(i: int, fmt: str, **kw):
    ext = ".jpg" if fmt == "jpeg" else ".png"
    ok, buf = cv2.imencode(ext, picture(i)[:, :, ::-1])
    assert ok
    return CompressedImage(header=header(i, **kw), format=fmt, data=buf.reshape(-1))


def write_bag(path, topics: dict[str, list], storage: StoragePlugin = StoragePlugin.MCAP):
    """``topics``: name -> messages; each message is written at its header stamp (+1 ms receive delay)."""
    with Writer(path, version=9, storage_plugin=storage) as writer:
        for topic, messages in topics.items():
            msgtype = messages[0].__msgtype__
            conn = writer.add_connection(topic, msgtype, typestore=TYPES)
            for msg in messages:
                stamp = msg.header.stamp.sec * 1_000_000_000 + msg.header.stamp.nanosec
                writer.write(conn, stamp + 1_000_000, TYPES.serialize_cdr(msg, msgtype))
    return path


@pytest.mark.parametrize("storage", [StoragePlugin.SQLITE3, StoragePlugin.MCAP])
@pytest.mark.parametrize("encoding,pad,bigendian", [("rgb8", 0, False), ("bgr8", 8, False), ("rgba8", 0, False),
                                                    ("bgra8", 4, False), ("mono8", 3, False), ("mono16", 0, False),
                                                    ("mono16", 2, True)])
def test_raw_images_decode_to_rgb_with_header_stamps(tmp_path, storage, encoding, pad, bigendian):
    bag = write_bag(tmp_path / "bag", {"/cam/image_raw": [raw_message(i, encoding, pad, bigendian) for i in range(6)]},
                    storage)
    assert is_bag(bag)
    source = BagSource(bag)
    assert source.topic == "/cam/image_raw" and source.size == (W, H) and source.num_frames == 6
    assert source.fps == pytest.approx(20.0, rel=0.01)
    frames = list(source)
    assert len(frames) == 6 and [f.seq for f in frames] == list(range(6))
    for i, frame in enumerate(frames):
        expected = picture(i)
        if encoding.startswith("mono"):
            expected = np.repeat(expected[:, :, :1], 3, axis=2)
        assert frame.image.shape == (H, W, 3) and frame.image.dtype == np.uint8
        assert np.array_equal(frame.image, expected), f"{encoding} frame {i}"
        assert frame.stamp_ns == T0 + i * 50_000_000
        assert frame.frame_id == "cam_optical_frame"


@pytest.mark.parametrize("storage", [StoragePlugin.SQLITE3, StoragePlugin.MCAP])
@pytest.mark.parametrize("fmt,tolerance", [("jpeg", 12), ("png", 0)])
def test_compressed_images(tmp_path, storage, fmt, tolerance):
    bag = write_bag(tmp_path / "bag", {"/cam/image/compressed": [compressed_message(i, fmt) for i in range(4)]},
                    storage)
    frames = list(BagSource(bag, topic="/cam/image/compressed"))
    assert len(frames) == 4
    for i, frame in enumerate(frames):
        assert int(np.abs(frame.image.astype(int) - picture(i)).max()) <= tolerance


def test_topic_choice_and_errors_list_the_image_topics(tmp_path):
    info = CameraInfo(header=header(0), height=H, width=W, distortion_model="plumb_bob", d=np.zeros(5),
                      k=np.eye(3).ravel(), r=np.eye(3).ravel(), p=np.zeros(12), binning_x=0, binning_y=0,
                      roi=TYPES.types["sensor_msgs/msg/RegionOfInterest"](x_offset=0, y_offset=0, height=0, width=0,
                                                                         do_rectify=False))
    bag = write_bag(tmp_path / "bag", {"/b/image_raw": [raw_message(0, "rgb8")],
                                        "/a/image/compressed": [compressed_message(0, "png")],
                                        "/a/camera_info": [info]})
    assert BagSource(bag).topic == "/a/image/compressed"  # first image topic by name, camera_info never
    with pytest.raises(SourceError, match=r"'/c/image' is not in the bag; image topics: "
                                          r"/a/image/compressed \(CompressedImage\), /b/image_raw \(Image\)"):
        BagSource(bag, topic="/c/image")
    with pytest.raises(SourceError, match=r"'/a/camera_info' exists but is not an image topic"):
        BagSource(bag, topic="/a/camera_info")


def test_zero_header_stamp_falls_back_to_receive_time_and_empty_frame_id_to_default(tmp_path):
    messages = [raw_message(i, "rgb8", stamp_ns=0, frame_id="") for i in range(2)]
    with Writer(tmp_path / "bag", version=9, storage_plugin=StoragePlugin.MCAP) as writer:
        conn = writer.add_connection("/img", Image.__msgtype__, typestore=TYPES)
        for i, msg in enumerate(messages):
            writer.write(conn, T0 + i * 1000, TYPES.serialize_cdr(msg, Image.__msgtype__))
    frames = list(BagSource(tmp_path / "bag", frame_id="fallback_frame"))
    assert [f.stamp_ns for f in frames] == [T0, T0 + 1000]
    assert frames[0].frame_id == "fallback_frame"


def test_undecodable_message_is_skipped_with_a_warning(tmp_path, caplog):
    broken = raw_message(1, "rgb8")
    broken.encoding = "yuv422_weird"
    bag = write_bag(tmp_path / "bag", {"/img": [raw_message(0, "rgb8"), broken, raw_message(2, "rgb8")]})
    with caplog.at_level(logging.WARNING):
        frames = list(BagSource(bag))
    assert [f.stamp_ns - T0 for f in frames] == [0, 100_000_000]
    assert any("message 1 skipped" in r.getMessage() and "yuv422_weird" in r.getMessage() for r in caplog.records)


def test_loop_continues_stamps(tmp_path):
    bag = write_bag(tmp_path / "bag", {"/img": [raw_message(i, "rgb8") for i in range(3)]})
    frames = list(itertools.islice(BagSource(bag, loop=True), 7))
    assert [f.seq for f in frames] == list(range(7))
    np.testing.assert_allclose(np.diff([f.stamp_ns for f in frames]), 50_000_000, atol=10)


def test_not_a_bag(tmp_path):
    with pytest.raises(SourceError, match="no such bag"):
        BagSource(tmp_path / "absent")
    (tmp_path / "fake").mkdir()
    (tmp_path / "fake" / "metadata.yaml").write_text("just: text\n")
    with pytest.raises(SourceError, match=r"fake: cannot read as a rosbag2 bag"):
        BagSource(tmp_path / "fake")


@pytest.mark.data
def test_shared_vtest_bag(shared_file):
    bag = shared_file("bags/rosbag2_vtest_mcap")
    raw = BagSource(bag)
    assert raw.topic == "/camera/image_raw" and raw.size == (384, 288) and raw.num_frames == 50
    assert raw.fps == pytest.approx(10.0, rel=0.01)
    frames = list(raw)
    assert len(frames) == 50 and frames[0].frame_id == "camera"
    assert frames[0].stamp_ns == T0 and np.all(np.diff([f.stamp_ns for f in frames]) == 100_000_000)
    compressed = BagSource(bag, topic="/camera/image_raw/compressed")
    assert compressed.size == (768, 576)
    first = next(iter(compressed))
    half = cv2.resize(first.image, (384, 288), interpolation=cv2.INTER_AREA)  # raw = the jpeg picture at half size
    assert float(np.abs(half.astype(int) - frames[0].image.astype(int)).mean()) < 4.0


@pytest.mark.data
def test_shared_bag_is_vtest_avi_frame_for_frame(shared_file):
    from perception.io.video import VideoFileSource

    frames = list(itertools.islice(BagSource(shared_file("bags/rosbag2_vtest_mcap")), 3))
    for frame, original in zip(frames, VideoFileSource(shared_file("videos/vtest.avi"))):
        small = cv2.resize(original.image, (384, 288), interpolation=cv2.INTER_AREA)
        assert float(np.abs(small.astype(int) - frame.image.astype(int)).mean()) < 1.0
