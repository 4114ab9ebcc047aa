"""Messages to and from the core's types: sensor_msgs/Image and CompressedImage, vision_msgs/Detection2DArray.

The pixel work lives in ``perception.io.image_codec`` (ROS-free, tested without ROS); this module only moves fields.
Fill ``data`` with ``bytes`` (``tobytes``) and read it through ``np.frombuffer`` without a copy (ROS2_NOTES).
"""

from __future__ import annotations

import array

import numpy as np
from sensor_msgs.msg import CompressedImage, Image
from std_msgs.msg import Header
from vision_msgs.msg import Detection2D, Detection2DArray, ObjectHypothesisWithPose

from perception.detection.types import Detections
from perception.io import image_codec


def stamp_to_ns(stamp) -> int:
    return int(stamp.sec) * 1_000_000_000 + int(stamp.nanosec)


def ns_to_stamp(ns: int, stamp) -> None:
    """Write integer nanoseconds into a ``builtin_interfaces/Time``."""
    stamp.sec = int(ns // 1_000_000_000)
    stamp.nanosec = int(ns % 1_000_000_000)


def image_to_rgb(msg: Image) -> np.ndarray:
    """sensor_msgs/Image -> (H, W, 3) uint8 RGB; raises ``ImageDecodeError`` naming the bad field."""
    return image_codec.decode_image(msg.data, msg.width, msg.height, msg.encoding, msg.step, bool(msg.is_bigendian))


def compressed_to_rgb(msg: CompressedImage) -> np.ndarray:
    return image_codec.decode_compressed(msg.data, msg.format)


def _bytes_field(data: bytes) -> array.array:
    # array('B') is the fastest type rclpy accepts for uint8[] (ROS2_NOTES: 0.06 ms at 640x480, and no cost with
    # ROS_PYTHON_CHECK_FIELDS=1, unlike bytes).
    out = array.array("B")
    out.frombytes(data)
    return out


def rgb_to_image(image: np.ndarray, header: Header, encoding: str = "rgb8") -> Image:
    """(H, W, 3) uint8 RGB -> sensor_msgs/Image in ``encoding`` (rgb8, bgr8 or mono8)."""
    data, step = image_codec.encode_image(image, encoding)
    msg = Image(header=header, height=int(image.shape[0]), width=int(image.shape[1]), encoding=encoding,
                is_bigendian=0, step=step)
    msg.data = _bytes_field(data)
    return msg


def rgb_to_compressed(image: np.ndarray, header: Header, fmt: str = "jpeg") -> CompressedImage:
    msg = CompressedImage(header=header, format=fmt)
    msg.data = _bytes_field(image_codec.encode_compressed(image, fmt))
    return msg


def features_to_image(features: np.ndarray, header: Header) -> Image:
    """(h, w, C) float32 -> Image with encoding ``32FC<C>``, one pixel per feature cell."""
    channels = int(features.shape[2])
    data, step = image_codec.encode_image(features, f"32FC{channels}")
    msg = Image(header=header, height=int(features.shape[0]), width=int(features.shape[1]),
                encoding=f"32FC{channels}", is_bigendian=0, step=step)
    msg.data = _bytes_field(data)
    return msg


def image_to_features(msg: Image) -> np.ndarray:
    return image_codec.decode_features(msg.data, msg.width, msg.height, msg.encoding, msg.step)


def detections_to_msg(detections: Detections, header: Header) -> Detection2DArray:
    """Core detections -> vision_msgs/Detection2DArray (4.x): centre/size boxes in pixels, the track id in
    ``Detection2D.id`` (empty when untracked), class and score in ``results``."""
    out = Detection2DArray(header=header)
    for i in range(len(detections)):
        x, y, w, h = (float(v) for v in detections.boxes[i])
        det = Detection2D(header=header)
        det.bbox.center.position.x = x + w / 2.0
        det.bbox.center.position.y = y + h / 2.0
        det.bbox.center.theta = 0.0
        det.bbox.size_x = w
        det.bbox.size_y = h
        track = int(detections.track_ids[i])
        det.id = str(track) if track >= 0 else ""
        hyp = ObjectHypothesisWithPose()
        hyp.hypothesis.class_id = detections.class_ids[i]
        hyp.hypothesis.score = float(detections.scores[i])
        hyp.pose.pose.position.x = x + w / 2.0
        hyp.pose.pose.position.y = y + h / 2.0
        det.results.append(hyp)
        out.detections.append(det)
    return out


def msg_to_detections(msg: Detection2DArray) -> Detections:
    """vision_msgs/Detection2DArray -> core detections (the best hypothesis of each detection)."""
    n = len(msg.detections)
    boxes = np.zeros((n, 4), np.float32)
    scores = np.zeros((n,), np.float32)
    ids = np.full((n,), -1, np.int64)
    classes: list[str] = []
    for i, det in enumerate(msg.detections):
        w, h = det.bbox.size_x, det.bbox.size_y
        boxes[i] = (det.bbox.center.position.x - w / 2.0, det.bbox.center.position.y - h / 2.0, w, h)
        best = max(det.results, key=lambda r: r.hypothesis.score, default=None)
        scores[i] = best.hypothesis.score if best is not None else 0.0
        classes.append(best.hypothesis.class_id if best is not None else "")
        ids[i] = int(det.id) if det.id.lstrip("-").isdigit() else -1
    return Detections(boxes=boxes, scores=scores, track_ids=ids, class_ids=classes)
