"""A rosbag2 bag from a video file (and its MOTChallenge ground truth), through ``rosbags``.

Topics, under ``namespace`` (default ``/camera``): ``image_raw`` (``sensor_msgs/Image`` rgb8) or
``image_raw/compressed`` (``sensor_msgs/CompressedImage``, JPEG) or both; ``camera_info`` (width and height only: an
uncalibrated camera, as ``camera_node`` publishes without a calibration); and with ground truth ``ground_truth``
(``vision_msgs/Detection2DArray``, see ``perception.replay.ground_truth``), one message per frame including frames
without people. Decoded frame ``i`` (0-based) is gt frame ``i + 1`` (EVAL_PROTOCOL.md). Frames are decoded with the
same OpenCV reader as ``dualstream eval detect`` (``perception.eval.detect.read_video``), so a raw bag carries the very
pixels that benchmark scores. Frame ``i`` is stamped (header and log time) ``start_ns + round(i * 1e9 / fps)``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import cv2
import numpy as np

from perception.eval.detect import read_video
from perception.eval.mot import FrameTruth, load_mot_gt
from perception.io.bag_types import typestore
from perception.io.bag_writer import BagWriter
from perception.replay.ground_truth import DETECTIONS, header, truth_to_cdr

RAW, COMPRESSED = "sensor_msgs/msg/Image", "sensor_msgs/msg/CompressedImage"
CAMERA_INFO = "sensor_msgs/msg/CameraInfo"
TRANSPORTS = ("raw", "compressed", "both")
DEFAULT_START_NS = 1_700_000_000 * 1_000_000_000


@dataclass
class VideoBagSpec:
    """What to write: ``transport`` raw | compressed | both, ``fps`` (0: the video's), ``max_frames`` (0: all)."""

    namespace: str = "/camera"
    transport: str = "raw"
    storage: str = "mcap"
    fps: float = 0.0
    max_frames: int = 0
    frame_id: str = "camera_optical_frame"
    start_ns: int = DEFAULT_START_NS
    jpeg_quality: int = 95

    def topic(self, name: str) -> str:
        return f"{self.namespace.rstrip('/')}/{name}"


def video_fps(path: str | Path) -> float:
    capture = cv2.VideoCapture(str(path))
    fps = float(capture.get(cv2.CAP_PROP_FPS) or 0.0)
    capture.release()
    return fps if 0 < fps < 1000 else 0.0


def _image_cdr(rgb: np.ndarray, hdr) -> bytes:
    h, w = rgb.shape[:2]
    msg = typestore().types[RAW](header=hdr, height=h, width=w, encoding="rgb8", is_bigendian=0, step=w * 3,
                                 data=np.ascontiguousarray(rgb).reshape(-1))
    return bytes(typestore().serialize_cdr(msg, RAW))


def _compressed_cdr(rgb: np.ndarray, hdr, quality: int) -> bytes:
    ok, jpeg = cv2.imencode(".jpg", cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, quality])
    if not ok:
        raise ValueError("JPEG encoding failed")
    msg = typestore().types[COMPRESSED](header=hdr, format="jpeg", data=jpeg.reshape(-1))
    return bytes(typestore().serialize_cdr(msg, COMPRESSED))


def _camera_info_cdr(width: int, height: int, hdr) -> bytes:
    t = typestore().types
    roi = t["sensor_msgs/msg/RegionOfInterest"](x_offset=0, y_offset=0, height=0, width=0, do_rectify=False)
    msg = t[CAMERA_INFO](header=hdr, height=height, width=width, distortion_model="", d=np.zeros(0),
                         k=np.zeros(9), r=np.zeros(9), p=np.zeros(12), binning_x=0, binning_y=0, roi=roi)
    return bytes(typestore().serialize_cdr(msg, CAMERA_INFO))


def bag_from_video(video: str | Path, out: str | Path, gt: str | Path | None = None,
                   spec: VideoBagSpec | None = None, progress: Callable[[int], None] | None = None) -> dict:
    """Write the bag; returns ``{"frames", "fps", "size", "topics": {topic: count}, "bag"}``."""
    spec = spec or VideoBagSpec()
    if spec.transport not in TRANSPORTS:
        raise ValueError(f"transport '{spec.transport}': expected one of {', '.join(TRANSPORTS)}")
    if not Path(video).is_file():
        raise FileNotFoundError(f"video {video} does not exist")
    truth = load_mot_gt(gt) if gt else None
    fps = spec.fps or video_fps(video) or 30.0
    frames, size = 0, (0, 0)
    with BagWriter(out, spec.storage) as writer:
        topics = {"info": spec.topic("camera_info")}
        writer.add_topic(topics["info"], CAMERA_INFO)
        if spec.transport in ("raw", "both"):
            topics["raw"] = spec.topic("image_raw")
            writer.add_topic(topics["raw"], RAW)
        if spec.transport in ("compressed", "both"):
            topics["compressed"] = spec.topic("image_raw/compressed")
            writer.add_topic(topics["compressed"], COMPRESSED)
        if truth is not None:
            topics["gt"] = spec.topic("ground_truth")
            writer.add_topic(topics["gt"], DETECTIONS)
        for index, rgb in enumerate(read_video(video, spec.max_frames)):
            stamp = spec.start_ns + int(round(index * 1e9 / fps))
            hdr = header(stamp, spec.frame_id)
            size = (rgb.shape[1], rgb.shape[0])
            if "raw" in topics:
                writer.write(topics["raw"], stamp, _image_cdr(rgb, hdr))
            if "compressed" in topics:
                writer.write(topics["compressed"], stamp, _compressed_cdr(rgb, hdr, spec.jpeg_quality))
            writer.write(topics["info"], stamp, _camera_info_cdr(size[0], size[1], hdr))
            if truth is not None:
                writer.write(topics["gt"], stamp, truth_to_cdr(truth.get(index + 1, FrameTruth()), stamp,
                                                              spec.frame_id))
            frames += 1
            if progress is not None:
                progress(frames)
        counts = dict(writer.counts)
    if frames == 0:
        raise ValueError(f"{video}: no frame could be decoded")
    return {"bag": str(out), "frames": frames, "fps": fps, "size": list(size), "storage": spec.storage,
            "topics": counts}
