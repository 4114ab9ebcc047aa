"""Bad input, ROS-free: one table of cases, each refused with an error that names the problem.

Issue 10's catalogue: image buffers (encoding mismatches, zero or huge sizes, step/data mismatch, corrupt and
truncated JPEG/PNG), camera_info fields (matrix sizes, NaN, inf), config YAML (unknown keys, wrong types, out of
range, tags and anchors safe loading refuses), checkpoints (truncated, wrong shapes, pickles with code in them),
bags (truncated, unknown message types, missing topics), video files (truncated, not a video, unsupported codec)
and network stream URLs that do not answer. The same cases through a live ROS node: tests/nodes/test_bad_input_node.py.
Each row is ``(id, build, error type, regex the message must match)``; ``build(env)`` makes the bad input in a
temporary folder and returns the call that must raise.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import cv2
import numpy as np
import pytest

from perception.config import ConfigError, load_config
from perception.geometry.camera_model import CalibrationError, CameraModel
from perception.io.image_codec import ImageDecodeError, decode_compressed, decode_image
from perception.io.frame import SourceError
from perception.models.checkpoint import CheckpointError, load_checkpoint

RGB = np.random.default_rng(0).integers(0, 256, (24, 32, 3), dtype=np.uint8)
JPEG = cv2.imencode(".jpg", RGB)[1].tobytes()
PNG = cv2.imencode(".png", RGB)[1].tobytes()


@dataclass
class Env:
    """What a case may use to build its input."""

    tmp: Path
    make_clip: Callable[..., Path]
    silent_port: int
    closed_port: int
    checkpoint: Path
    marker_pickle: Callable[[Path], Path]
    markers: list


@pytest.fixture
def env(tmp_path, make_clip, silent_port, closed_port, tiny_checkpoint, marker_pickle) -> Env:
    return Env(tmp_path, make_clip, silent_port, closed_port, tiny_checkpoint, marker_pickle, [])


# -- builders ------------------------------------------------------------------------------------------------------
def raw(encoding="rgb8", width=32, height=24, step=None, data=None, bigendian=False):
    data = RGB.tobytes() if data is None else data
    return lambda env: (lambda: decode_image(data, width, height, encoding, 96 if step is None else step, bigendian))


def compressed(data: bytes, fmt: str = "jpeg"):
    return lambda env: (lambda: decode_compressed(data, fmt))


def _camera_info(**changes) -> dict:
    info = {"width": 640, "height": 480, "distortion_model": "plumb_bob", "d": [0.1, -0.05, 0.0, 0.0, 0.0],
            "k": [500.0, 0, 320, 0, 500, 240, 0, 0, 1], "r": [1.0, 0, 0, 0, 1, 0, 0, 0, 1],
            "p": [500.0, 0, 320, 0, 0, 500, 240, 0, 0, 0, 1, 0]}
    info.update(changes)
    return info


def camera_info(**changes):
    return lambda env: (lambda: CameraModel.from_camera_info(_camera_info(**changes)))


def yaml_text(text: str):
    def build(env: Env):
        path = env.tmp / "config.yaml"
        path.write_text(text)
        return lambda: load_config(path)
    return build


def yaml_bytes(data: bytes):
    def build(env: Env):
        path = env.tmp / "config.yaml"
        path.write_bytes(data)
        return lambda: load_config(path)
    return build


def yaml_tag_running(tag_line: str):
    """A YAML whose tag would run code creating a marker file if the loader were not the safe one."""
    def build(env: Env):
        marker = env.tmp / "PWNED-yaml"
        env.markers.append(marker)
        path = env.tmp / "config.yaml"
        path.write_text(tag_line.format(marker=marker))
        return lambda: load_config(path)
    return build


def _checkpoint_copy(env: Env, name: str = "copy") -> tuple[Path, Path]:
    weights = env.tmp / f"{name}.safetensors"
    weights.write_bytes(env.checkpoint.read_bytes())
    meta = weights.with_suffix(".json")
    meta.write_text(env.checkpoint.with_suffix(".json").read_text())
    return weights, meta


def ckpt_truncated(env: Env):
    weights, _ = _checkpoint_copy(env)
    weights.write_bytes(weights.read_bytes()[:-1000])
    return lambda: load_checkpoint(weights)


def ckpt_wrong_shapes(env: Env):
    import torch
    from safetensors.torch import load_file, save_file

    weights, meta = _checkpoint_copy(env)
    tensors = load_file(str(weights))
    key = sorted(k for k, v in tensors.items() if v.ndim == 2)[0]
    tensors[key] = torch.zeros(tensors[key].shape[0] + 1, tensors[key].shape[1])
    save_file(tensors, str(weights))
    from perception.models.checkpoint import file_sha256

    meta.write_text(meta.read_text().replace(json_sha(meta), file_sha256(weights)))
    return lambda: load_checkpoint(weights)


def json_sha(meta: Path) -> str:
    import json

    return json.loads(meta.read_text())["sha256"]


def ckpt_pickle_as_safetensors(env: Env):
    """A pickle with code in it, under the checkpoint's name and with a matching sha256 in its JSON."""
    from perception.models.checkpoint import file_sha256

    weights, meta = _checkpoint_copy(env)
    env.markers.append(env.marker_pickle(weights))
    meta.write_text(meta.read_text().replace(json_sha(meta), file_sha256(weights)))
    return lambda: load_checkpoint(weights)


def ckpt_pickle_pth(env: Env):
    """A ``.pth`` pickle with code in it given as DINOv2 weights: ``torch.load(weights_only=True)`` refuses it."""
    from perception.train.dinov2_init import read_state_dict

    path = env.tmp / "dinov2_vits14.pth"
    env.markers.append(env.marker_pickle(path))
    return lambda: read_state_dict(path)


def ckpt_meta_not_json(env: Env):
    weights, meta = _checkpoint_copy(env)
    meta.write_text("{not json")
    return lambda: load_checkpoint(weights)


def ckpt_meta_missing(env: Env):
    weights, meta = _checkpoint_copy(env)
    meta.unlink()
    return lambda: load_checkpoint(weights)


def _bag(env: Env, topics: dict[str, tuple[str, list[bytes]]], name: str = "bag") -> Path:
    """A real mcap bag through rosbags: ``topics``: name -> (msgtype, CDR payloads)."""
    from rosbags.rosbag2 import StoragePlugin, Writer

    from perception.io.bag_types import typestore

    path = env.tmp / name
    with Writer(path, version=9, storage_plugin=StoragePlugin.MCAP) as writer:
        for topic, (msgtype, payloads) in topics.items():
            conn = writer.add_connection(topic, msgtype, typestore=typestore())
            for i, payload in enumerate(payloads):
                writer.write(conn, 1_000_000_000 + i * 100_000_000, payload)
    return path


def _image_cdr(i: int = 0) -> bytes:
    from perception.io.bag_types import typestore

    store = typestore()
    t = store.types
    header = t["std_msgs/msg/Header"](stamp=t["builtin_interfaces/msg/Time"](sec=1, nanosec=i), frame_id="cam")
    msg = t["sensor_msgs/msg/Image"](header=header, height=24, width=32, encoding="rgb8", is_bigendian=0, step=96,
                                     data=RGB.reshape(-1))
    return bytes(store.serialize_cdr(msg, "sensor_msgs/msg/Image"))


def bag_truncated(env: Env):
    bag = _bag(env, {"/cam/image_raw": ("sensor_msgs/msg/Image", [_image_cdr(i) for i in range(5)])})
    mcap = next(bag.glob("*.mcap"))
    mcap.write_bytes(mcap.read_bytes()[: mcap.stat().st_size // 3])
    return lambda: list(__import__("perception.io.bag", fromlist=["BagSource"]).BagSource(bag))


def bag_unknown_types(env: Env):
    """Only a message type no type store knows (its definition travels in the bag; it is still not an image)."""
    from rosbags.rosbag2 import StoragePlugin, Writer
    from rosbags.typesys import Stores, get_types_from_msg, get_typestore

    store = get_typestore(Stores.LATEST)
    store.register(get_types_from_msg("float64 speed\nstring mode\n", "acme_msgs/msg/Thruster"))
    path = env.tmp / "bag"
    with Writer(path, version=9, storage_plugin=StoragePlugin.MCAP) as writer:
        conn = writer.add_connection("/thrusters", "acme_msgs/msg/Thruster", typestore=store)
        msg = store.types["acme_msgs/msg/Thruster"](speed=1.0, mode="idle")
        writer.write(conn, 1, bytes(store.serialize_cdr(msg, "acme_msgs/msg/Thruster")))
    from perception.io.bag import BagSource

    return lambda: BagSource(path)


def bag_missing_topic(env: Env):
    bag = _bag(env, {"/cam/image_raw": ("sensor_msgs/msg/Image", [_image_cdr()])})
    from perception.io.bag import BagSource

    return lambda: BagSource(bag, topic="/front/image_raw")


def bag_corrupt_messages(env: Env):
    """Every image message of the topic is cut short: the topic has nothing decodable."""
    bag = _bag(env, {"/cam/image_raw": ("sensor_msgs/msg/Image", [_image_cdr(i)[:40] for i in range(3)])})
    from perception.io.bag import BagSource

    return lambda: BagSource(bag)


def bag_bad_metadata(env: Env):
    (env.tmp / "bag").mkdir()
    (env.tmp / "bag" / "metadata.yaml").write_text("rosbag2_bagfile_information: [1, 2\n")
    from perception.io.bag import BagSource

    return lambda: BagSource(env.tmp / "bag")


def video(build_file: Callable[[Env], Path]):
    def build(env: Env):
        from perception.io.video import VideoFileSource

        path = build_file(env)
        return lambda: list(VideoFileSource(path))
    return build


def _truncated_header(env: Env) -> Path:
    full = env.make_clip("full.avi")
    cut = env.tmp / "cut.avi"
    cut.write_bytes(full.read_bytes()[:200])
    return cut


def _not_a_video(env: Env) -> Path:
    path = env.tmp / "holiday.mp4"
    path.write_text("this is a shopping list, not a video\n" * 50)
    return path


def _unknown_codec(env: Env) -> Path:
    """A real AVI whose video codec tag is rewritten to one FFmpeg has no decoder for."""
    full = env.make_clip("mjpeg.avi", codec="mjpeg")
    path = env.tmp / "zzzz.avi"
    data = full.read_bytes()
    assert b"MJPG" in data
    path.write_bytes(data.replace(b"MJPG", b"ZZZZ"))
    return path


def _empty_file(env: Env) -> Path:
    path = env.tmp / "empty.mp4"
    path.write_bytes(b"")
    return path


def stream(url: Callable[[Env], str]):
    def build(env: Env):
        from perception.io.network import NetworkStreamSource

        return lambda: NetworkStreamSource(url(env), timeout_s=1.0)
    return build


# -- the table -----------------------------------------------------------------------------------------------------
BILLION_LAUGHS = "a: &a [x, x, x, x, x, x, x, x, x]\n" + "".join(
    f"{chr(98 + i)}: &{chr(98 + i)} [{', '.join(['*' + chr(97 + i)] * 9)}]\n" for i in range(8))

CASES: list[tuple[str, Callable[[Env], Callable[[], Any]], type, str]] = [
    # raw image buffers
    ("image/unknown-encoding", raw("yuv422_fancy"), ImageDecodeError, r"unsupported encoding 'yuv422_fancy'"),
    ("image/empty-encoding", raw(""), ImageDecodeError, r"unsupported encoding ''"),
    ("image/float-encoding-as-image", raw("32FC1", step=128, data=bytes(128 * 24)), ImageDecodeError,
     r"unsupported encoding '32FC1'"),
    ("image/mono16-declared-mono8-data", raw("mono16", step=32, data=bytes(32 * 24)), ImageDecodeError,
     r"step 32 is smaller than width\*channels\*bytes = 32\*1\*2 = 64"),
    ("image/rgb8-declared-mono8-data", raw("rgb8", data=bytes(32 * 24)), ImageDecodeError,
     r"data has 768 bytes, expected step\*height = 96\*24 = 2304"),
    ("image/rgba8-declared-rgb8-data", raw("rgba8", step=128), ImageDecodeError, r"data has 2304 bytes.*= 3072"),
    ("image/zero-width", raw(width=0), ImageDecodeError, r"0x24: width and height must be positive"),
    ("image/zero-height", raw(height=0, data=b""), ImageDecodeError, r"32x0: width and height must be positive"),
    ("image/huge-width", raw(width=100_000, step=300_000), ImageDecodeError, r"larger than the limit of 16384"),
    ("image/huge-but-allowed-size-no-data", raw(width=16000, height=16000, step=48000), ImageDecodeError,
     r"data has 2304 bytes, expected step\*height = 48000\*16000"),
    ("image/step-smaller-than-row", raw(step=95), ImageDecodeError, r"step 95 is smaller than .* = 96"),
    ("image/step-overflows", raw(step=2**32 - 1), ImageDecodeError, r"expected step\*height = 4294967295\*24"),
    ("image/data-short", raw(data=RGB.tobytes()[:-1]), ImageDecodeError, r"data has 2303 bytes"),
    ("image/data-long", raw(data=RGB.tobytes() + b"\0" * 96), ImageDecodeError, r"data has 2400 bytes.*= 2304"),
    ("image/empty-data", raw(data=b""), ImageDecodeError, r"data has 0 bytes"),
    # compressed images
    ("compressed/empty", compressed(b""), ImageDecodeError, r"no data \(0 bytes\)"),
    ("compressed/unsupported-format", compressed(JPEG, "h264"), ImageDecodeError, r"unsupported compressed format"),
    ("compressed/not-an-image", compressed(b"GIF89a" + bytes(100)), ImageDecodeError, r"neither JPEG nor PNG"),
    ("compressed/truncated-jpeg", compressed(JPEG[: len(JPEG) // 2]), ImageDecodeError, r"JPEG data is truncated"),
    ("compressed/corrupt-jpeg", compressed(b"\xff\xd8" + bytes(300) + b"\xff\xd9"), ImageDecodeError,
     r"corrupt JPEG"),
    ("compressed/truncated-png", compressed(PNG[: len(PNG) // 2], "png"), ImageDecodeError, r"(corrupt|truncated) PNG"),
    ("compressed/corrupt-png", compressed(PNG[:40] + bytes(len(PNG) - 40), "png"), ImageDecodeError,
     r"(corrupt|truncated) PNG"),
    # camera_info
    ("camera_info/k-8-values", camera_info(k=[500.0, 0, 320, 0, 500, 240, 0, 0]), CalibrationError, r"K"),
    ("camera_info/p-9-values", camera_info(p=[500.0, 0, 320, 0, 500, 240, 0, 0, 1]), CalibrationError, r"P"),
    ("camera_info/r-empty", camera_info(r=[]), CalibrationError, r"R"),
    ("camera_info/nan-in-k", camera_info(k=[math.nan, 0, 320, 0, 500, 240, 0, 0, 1]), CalibrationError, r"K"),
    ("camera_info/inf-in-d", camera_info(d=[0.1, math.inf, 0, 0, 0]), CalibrationError, r"D"),
    ("camera_info/d-wrong-length", camera_info(d=[0.1, 0.2, 0.3]), CalibrationError, r"D|plumb_bob"),
    ("camera_info/zero-width", camera_info(width=0), CalibrationError, r"width"),
    ("camera_info/uncalibrated-k", camera_info(k=[0.0] * 9), CalibrationError, r"K|uncalibrated"),
    # config YAML
    ("yaml/unknown-key", yaml_text("detector:\n  score_treshold: 0.4\n"), ConfigError,
     r"unknown config key 'detector.score_treshold'"),
    ("yaml/unknown-section", yaml_text("detectors: {}\n"), ConfigError, r"unknown config key 'detectors'"),
    ("yaml/wrong-type-str-for-float", yaml_text("detector:\n  nms_iou: half\n"), ConfigError,
     r"detector.nms_iou: expected float, got str 'half'"),
    ("yaml/wrong-type-bool-for-int", yaml_text("encoder:\n  global_every: yes\n"), ConfigError,
     r"encoder.global_every: expected int, got bool"),
    ("yaml/wrong-type-list-for-section", yaml_text("runtime: [cpu]\n"), ConfigError, r"runtime: expected a mapping"),
    ("yaml/out-of-range", yaml_text("encoder:\n  global_every: 0\n"), ConfigError,
     r"encoder.global_every: expected an integer >= 1, got 0"),
    ("yaml/out-of-range-probability", yaml_text("detector:\n  nms_iou: 1.5\n"), ConfigError,
     r"detector.nms_iou: expected a value in \[0, 1\], got 1.5"),
    ("yaml/nan", yaml_text("detector:\n  score_threshold: .nan\n"), ConfigError,
     r"detector.score_threshold: expected a finite number, got nan"),
    ("yaml/top-level-list", yaml_text("- a\n- b\n"), ConfigError, r"top level must be a mapping, got list"),
    ("yaml/python-object-tag", yaml_tag_running("x: !!python/object/apply:os.system ['touch {marker}']\n"),
     ConfigError, r"not valid YAML \(safe loading\).*python/object/apply"),
    ("yaml/python-name-tag", yaml_tag_running("runtime:\n  device: !!python/name:os.system\n"), ConfigError,
     r"not valid YAML \(safe loading\).*python/name"),
    ("yaml/custom-include-tag", yaml_text("encoder: !include other.yaml\n"), ConfigError,
     r"not valid YAML \(safe loading\).*!include"),
    ("yaml/undefined-alias", yaml_text("encoder: *missing\n"), ConfigError, r"not valid YAML.*missing"),
    ("yaml/billion-laughs-anchors", yaml_text(BILLION_LAUGHS), ConfigError, r"unknown config key 'a'"),
    ("yaml/binary-file", yaml_bytes(b"\x89PNG\r\n\x1a\n\xff\xfe\x00\x00"), ConfigError, r"config\.yaml"),
    # checkpoints
    ("checkpoint/truncated", ckpt_truncated, CheckpointError, r"do not match the sha256 in their JSON: truncated"),
    ("checkpoint/wrong-shapes", ckpt_wrong_shapes, CheckpointError, r"shape mismatches: .*vs model"),
    ("checkpoint/pickle-with-code", ckpt_pickle_as_safetensors, CheckpointError, r"not readable safetensors"),
    ("checkpoint/pickle-pth-weights-only", ckpt_pickle_pth, Exception, r"weights-only torch file"),
    ("checkpoint/metadata-not-json", ckpt_meta_not_json, CheckpointError, r"copy\.json is not valid JSON"),
    ("checkpoint/metadata-missing", ckpt_meta_missing, CheckpointError, r"metadata not found: .*copy\.json"),
    # bags
    ("bag/truncated", bag_truncated, SourceError, r"bag"),
    ("bag/unknown-message-types", bag_unknown_types, SourceError, r"no image topics \(topics: /thrusters\)"),
    ("bag/missing-topic", bag_missing_topic, SourceError,
     r"'/front/image_raw' is not in the bag; image topics: /cam/image_raw \(Image\)"),
    ("bag/corrupt-messages", bag_corrupt_messages, SourceError, r"has no decodable image messages"),
    ("bag/bad-metadata", bag_bad_metadata, SourceError, r"cannot read as a rosbag2 bag"),
    # video files
    ("video/truncated-header", video(_truncated_header), SourceError, r"cut\.avi"),
    ("video/not-a-video", video(_not_a_video), SourceError, r"holiday\.mp4: not a video"),
    ("video/unsupported-codec", video(_unknown_codec), SourceError, r"zzzz\.avi: unsupported video codec"),
    ("video/empty-file", video(_empty_file), SourceError, r"empty\.mp4"),
    # network streams that do not answer
    ("stream/silent-http", stream(lambda e: f"http://127.0.0.1:{e.silent_port}/cam.mjpg"), SourceError,
     r"127\.0\.0\.1"),
    ("stream/silent-rtsp", stream(lambda e: f"rtsp://127.0.0.1:{e.silent_port}/cam"), SourceError, r"127\.0\.0\.1"),
    ("stream/refused-http", stream(lambda e: f"http://127.0.0.1:{e.closed_port}/cam.mjpg"), SourceError,
     r"connection refused|cannot open"),
    ("stream/refused-rtsp", stream(lambda e: f"rtsp://127.0.0.1:{e.closed_port}/cam"), SourceError,
     r"connection refused|cannot open"),
]


def test_the_catalogue_covers_every_kind_of_input():
    kinds = {case[0].split("/")[0] for case in CASES}
    assert kinds == {"image", "compressed", "camera_info", "yaml", "checkpoint", "bag", "video", "stream"}
    assert len(CASES) >= 30 and len({case[0] for case in CASES}) == len(CASES)


@pytest.mark.parametrize("build,error,match", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_bad_input_is_refused_with_a_clear_error(env, build, error, match):
    call = build(env)
    started = time.monotonic()
    with pytest.raises(error, match=match):
        call()
    assert time.monotonic() - started < 5.0  # refused promptly: no hang on a silent server or an alias bomb
    for marker in env.markers:
        assert not marker.exists(), f"loading ran code from the file: {marker} was created"


@pytest.mark.parametrize("bigendian", [0, 1])
def test_the_big_endian_flag_is_honoured_for_16_bit_and_harmless_for_8_bit(bigendian):
    values = RGB[:, :, 0].astype(np.uint16) << 8 | 0x33
    data = values.astype(">u2" if bigendian else "<u2").tobytes()
    out = decode_image(data, 32, 24, "mono16", 64, bool(bigendian))
    np.testing.assert_array_equal(out[:, :, 1], RGB[:, :, 0])
    np.testing.assert_array_equal(decode_image(RGB.tobytes(), 32, 24, "rgb8", 96, bool(bigendian)), RGB)
    swapped = decode_image(data, 32, 24, "mono16", 64, not bigendian)  # the wrong flag gives the low byte: 0x33
    assert (swapped == 0x33).all()
