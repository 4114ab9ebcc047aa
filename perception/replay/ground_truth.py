"""Ground truth and detections as ``vision_msgs/Detection2DArray`` in bags, and back to the evaluation's types.

Ground truth on its own topic (``<camera>/ground_truth``), one message per image with the image's header stamp: each
valid box (MOT ``conf == 1``) is a ``Detection2D`` with ``id`` = the MOT track id, class ``person`` and score 1; each
ignore region (``conf == 0``) has class ``ignore`` and score 0. Boxes are centre/size in pixels (vision_msgs 4.x),
so ``x = cx - w / 2``. Read back, a message gives the ``FrameTruth`` of ``perception.eval.mot`` exactly.

Detections from ``perception_node`` use the same type (``dualstream_perception.conversions.detections_to_msg``): the
track id in ``id`` (empty: untracked), class and score in the first result.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from perception.eval.mot import FrameTruth
from perception.io.bag_types import typestore

DETECTIONS = "vision_msgs/msg/Detection2DArray"
VALID_CLASS, IGNORE_CLASS = "person", "ignore"


def _types() -> Any:
    return typestore().types


def header(stamp_ns: int, frame_id: str) -> Any:
    t = _types()
    sec, nanosec = divmod(int(stamp_ns), 1_000_000_000)
    return t["std_msgs/msg/Header"](stamp=t["builtin_interfaces/msg/Time"](sec=sec, nanosec=nanosec),
                                    frame_id=frame_id)


def _detection(hdr: Any, box: np.ndarray, ident: str, class_id: str, score: float) -> Any:
    t = _types()
    x, y, w, h = (float(v) for v in box)
    cx, cy = x + w / 2.0, y + h / 2.0
    point = t["geometry_msgs/msg/Point"](x=cx, y=cy, z=0.0)
    pose = t["geometry_msgs/msg/Pose"](position=point, orientation=t["geometry_msgs/msg/Quaternion"](
        x=0.0, y=0.0, z=0.0, w=1.0))
    hypothesis = t["vision_msgs/msg/ObjectHypothesisWithPose"](
        hypothesis=t["vision_msgs/msg/ObjectHypothesis"](class_id=class_id, score=float(score)),
        pose=t["geometry_msgs/msg/PoseWithCovariance"](pose=pose, covariance=np.zeros(36, np.float64)))
    bbox = t["vision_msgs/msg/BoundingBox2D"](
        center=t["vision_msgs/msg/Pose2D"](position=t["vision_msgs/msg/Point2D"](x=cx, y=cy), theta=0.0),
        size_x=w, size_y=h)
    return t["vision_msgs/msg/Detection2D"](header=hdr, results=[hypothesis], bbox=bbox, id=ident)


def truth_to_cdr(truth: FrameTruth, stamp_ns: int, frame_id: str) -> bytes:
    """One frame's ground truth as a serialized ``Detection2DArray``."""
    hdr = header(stamp_ns, frame_id)
    dets = [_detection(hdr, b, str(int(i)), VALID_CLASS, 1.0) for b, i in zip(truth.boxes, truth.ids)]
    dets += [_detection(hdr, b, "", IGNORE_CLASS, 0.0) for b in truth.ignore]
    msg = _types()[DETECTIONS](header=hdr, detections=dets)
    return bytes(typestore().serialize_cdr(msg, DETECTIONS))


def parse_detections(cdr: bytes) -> tuple[int, np.ndarray, np.ndarray, np.ndarray, list[str]]:
    """``(stamp_ns, boxes (N, 4) x, y, w, h, scores (N,), ids (N,) -1 when untracked, class ids)`` of a
    serialized ``Detection2DArray`` (the first result of each detection)."""
    msg = typestore().deserialize_cdr(cdr, DETECTIONS)
    stamp = int(msg.header.stamp.sec) * 1_000_000_000 + int(msg.header.stamp.nanosec)
    n = len(msg.detections)
    boxes, scores = np.zeros((n, 4), np.float64), np.zeros(n, np.float64)
    ids, classes = np.full(n, -1, np.int64), []
    for k, det in enumerate(msg.detections):
        w, h = float(det.bbox.size_x), float(det.bbox.size_y)
        boxes[k] = (det.bbox.center.position.x - w / 2.0, det.bbox.center.position.y - h / 2.0, w, h)
        best = det.results[0].hypothesis if len(det.results) else None
        scores[k] = float(best.score) if best is not None else 0.0
        classes.append(best.class_id if best is not None else "")
        ids[k] = int(det.id) if det.id.lstrip("-").isdigit() else -1
    return stamp, boxes, scores, ids, classes


def truth_from_cdr(cdr: bytes) -> tuple[int, FrameTruth]:
    """``(stamp_ns, FrameTruth)`` of a ground-truth message written by ``truth_to_cdr``."""
    stamp, boxes, _, ids, classes = parse_detections(cdr)
    ignore = np.array([c == IGNORE_CLASS for c in classes], bool)
    return stamp, FrameTruth(boxes[~ignore].reshape(-1, 4), ids[~ignore], boxes[ignore].reshape(-1, 4))
