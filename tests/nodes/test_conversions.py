"""Message conversions: every input encoding with row padding, endianness, features, detections."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("rclpy")
from sensor_msgs.msg import CompressedImage, Image  # noqa: E402
from std_msgs.msg import Header  # noqa: E402

from dualstream_perception.conversions import (compressed_to_rgb, detections_to_msg, features_to_image,  # noqa: E402
                                               image_to_features, image_to_rgb, msg_to_detections,
                                               rgb_to_compressed, rgb_to_image)
from perception.detection.types import Detections  # noqa: E402
from perception.io.image_codec import ImageDecodeError  # noqa: E402

RNG = np.random.default_rng(0)
RGB = RNG.integers(0, 256, (6, 5, 3), dtype=np.uint8)


def _image(pixels: np.ndarray, encoding: str, pad: int = 0, bigendian: bool = False) -> Image:
    height, width = pixels.shape[:2]
    rows = pixels.reshape(height, -1)
    if pixels.dtype == np.uint16:
        rows = pixels.astype(">u2" if bigendian else "<u2").reshape(height, -1).view(np.uint8)
    rows = np.ascontiguousarray(rows).view(np.uint8)
    if pad:
        rows = np.concatenate([rows, np.full((height, pad), 7, np.uint8)], axis=1)
    msg = Image(height=height, width=width, encoding=encoding, is_bigendian=int(bigendian), step=rows.shape[1])
    msg.data = rows.tobytes()
    return msg


@pytest.mark.parametrize("pad", [0, 3])
@pytest.mark.parametrize("encoding,pixels,expected", [
    ("rgb8", RGB, RGB),
    ("bgr8", RGB[:, :, ::-1], RGB),
    ("rgba8", np.dstack([RGB, np.full(RGB.shape[:2], 9, np.uint8)]), RGB),
    ("bgra8", np.dstack([RGB[:, :, ::-1], np.full(RGB.shape[:2], 9, np.uint8)]), RGB),
    ("mono8", RGB[:, :, :1], np.repeat(RGB[:, :, :1], 3, axis=2)),
])
def test_every_8bit_encoding_with_row_padding(encoding, pixels, expected, pad):
    out = image_to_rgb(_image(np.ascontiguousarray(pixels), encoding, pad))
    assert out.shape == (6, 5, 3) and out.dtype == np.uint8
    np.testing.assert_array_equal(out, expected)


@pytest.mark.parametrize("bigendian", [False, True])
def test_mono16_keeps_the_high_byte_in_either_byte_order(bigendian):
    values = (RGB[:, :, 0].astype(np.uint16) << 8) | 0x5A
    out = image_to_rgb(_image(values[:, :, None], "mono16", pad=2, bigendian=bigendian))
    np.testing.assert_array_equal(out[:, :, 0], RGB[:, :, 0])
    np.testing.assert_array_equal(out[:, :, 2], RGB[:, :, 0])


@pytest.mark.parametrize("mutate,needle", [
    (lambda m: setattr(m, "encoding", "yuv422_weird"), "unsupported encoding 'yuv422_weird'"),
    (lambda m: setattr(m, "data", bytes(m.data)[:-4]), "expected step*height"),
    (lambda m: setattr(m, "step", 7), "step 7 is smaller than"),
    (lambda m: setattr(m, "width", 0), "must be positive"),
    (lambda m: setattr(m, "height", 100000), "larger than the limit"),
])
def test_bad_raw_messages_name_the_problem(mutate, needle):
    msg = _image(RGB, "rgb8")
    mutate(msg)
    with pytest.raises(ImageDecodeError, match=needle.replace("*", r"\*").replace("(", r"\(")):
        image_to_rgb(msg)


def test_compressed_round_trip_and_corruption():
    header = Header(frame_id="cam")
    png = rgb_to_compressed(RGB, header, "png")
    np.testing.assert_array_equal(compressed_to_rgb(png), RGB)
    big = np.kron(RGB, np.ones((8, 8, 1), np.uint8))
    jpeg = rgb_to_compressed(big, header, "jpeg")
    assert np.abs(compressed_to_rgb(jpeg).astype(int) - big).mean() < 12.0  # chroma subsampling; a channel swap gives ~80
    truncated = CompressedImage(format="jpeg", data=bytes(jpeg.data)[: len(jpeg.data) // 2])
    with pytest.raises(ImageDecodeError, match="truncated"):
        compressed_to_rgb(truncated)
    garbage = CompressedImage(format="jpeg", data=b"\xff\xd8" + bytes(200) + b"\xff\xd9")
    with pytest.raises(ImageDecodeError, match="corrupt JPEG"):
        compressed_to_rgb(garbage)
    with pytest.raises(ImageDecodeError, match="neither JPEG nor PNG"):
        compressed_to_rgb(CompressedImage(format="jpeg", data=b"hello world"))


def test_rgb_to_image_round_trips_through_bgr8():
    msg = rgb_to_image(RGB, Header(frame_id="x"), "bgr8")
    assert msg.step == 15 and msg.encoding == "bgr8"
    np.testing.assert_array_equal(image_to_rgb(msg), RGB)


def test_features_as_32fc_image_round_trip():
    feats = RNG.standard_normal((4, 7, 24)).astype(np.float32)
    msg = features_to_image(feats, Header())
    assert msg.encoding == "32FC24" and msg.width == 7 and msg.height == 4 and msg.step == 7 * 24 * 4
    np.testing.assert_array_equal(image_to_features(msg), feats)


def test_detections_round_trip_with_track_ids_and_scores():
    dets = Detections(boxes=np.array([[10, 20, 30, 40], [1.5, 2.5, 3, 4]], np.float32),
                      scores=np.array([0.9, 0.25], np.float32), track_ids=np.array([7, -1]),
                      class_ids=["person", "object"])
    msg = detections_to_msg(dets, Header(frame_id="cam"))
    first = msg.detections[0]
    assert (first.bbox.center.position.x, first.bbox.center.position.y) == (25.0, 40.0)
    assert (first.bbox.size_x, first.bbox.size_y) == (30.0, 40.0)
    assert first.id == "7" and msg.detections[1].id == ""
    assert first.results[0].hypothesis.class_id == "person"
    assert first.results[0].hypothesis.score == pytest.approx(0.9)
    back = msg_to_detections(msg)
    np.testing.assert_allclose(back.boxes, dets.boxes)
    np.testing.assert_array_equal(back.track_ids, dets.track_ids)
    assert back.class_ids == dets.class_ids
