"""Image topics of a rosbag2 recording (sqlite3 or mcap storage) as a ``FrameSource``, without ROS.

Reads with the ``rosbags`` library (``rosbags.rosbag2.Reader``, CDR deserialisation through a ``rosbags.typesys``
type store) and converts ``sensor_msgs/Image`` and ``sensor_msgs/CompressedImage`` payloads with
``perception.io.image_codec``. Frames are stamped with ``header.stamp`` (REP 117 style sensor time), falling back to
the bag's receive time when the header stamp is zero; ``frame_id`` comes from the header when it is set.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, Iterator

import numpy as np
from rosbags.rosbag2 import Reader
from rosbags.rosbag2.errors import ReaderError
from rosbags.serde.errors import SerdeError
from rosbags.typesys import Stores, get_typestore, get_types_from_msg

from perception.io.bag_path import is_bag  # noqa: F401 (re-exported)
from perception.io.frame import Frame, SourceError
from perception.io.image_codec import ImageDecodeError, decode_compressed, decode_image

log = logging.getLogger(__name__)

RAW_IMAGE = "sensor_msgs/msg/Image"
COMPRESSED_IMAGE = "sensor_msgs/msg/CompressedImage"
IMAGE_TYPES = (RAW_IMAGE, COMPRESSED_IMAGE)


def message_to_rgb(msg: Any, msgtype: str) -> np.ndarray:
    """Decode a deserialised Image or CompressedImage message to ``(H, W, 3)`` uint8 RGB."""
    if msgtype == COMPRESSED_IMAGE:
        return decode_compressed(msg.data, msg.format)
    return decode_image(msg.data, int(msg.width), int(msg.height), msg.encoding, int(msg.step), bool(msg.is_bigendian))


class BagSource:
    """Frames of one image topic of a rosbag2 bag.

    ``topic=None`` picks the first image topic in name order (raw before compressed when both exist for a camera);
    a topic that is missing or not an image raises ``SourceError`` listing the bag's image topics. A message that does
    not decode is skipped with a warning. ``fps`` is estimated from the topic's message count and the bag duration.
    """

    def __init__(self, path: str | Path, topic: str | None = None, loop: bool = False,
                 frame_id: str = "camera_optical_frame", name: str | None = None) -> None:
        self.path = Path(path)
        if not self.path.exists():
            raise SourceError(f"{self.path}: no such bag")
        self.loop = loop
        self.default_frame_id = frame_id
        self._closed = False
        try:
            with Reader(self.path) as reader:
                self._describe(reader, topic)
        except (ReaderError, KeyError, ValueError) as exc:
            raise SourceError(f"{self.path}: cannot read as a rosbag2 bag ({exc})") from exc
        self.name = name or f"{self.path.name}{self.topic}"
        one_pass = self._pass()
        first = next(one_pass, None)
        one_pass.close()
        if first is None:
            raise SourceError(f"{self.path}: topic {self.topic} has no decodable image messages")
        self.size: tuple[int, int] = (first[0].shape[1], first[0].shape[0])

    def _describe(self, reader: Reader, topic: str | None) -> None:
        images = {name: info.msgtype for name, info in reader.topics.items() if info.msgtype in IMAGE_TYPES}
        listing = ", ".join(f"{t} ({m.rsplit('/', 1)[-1]})" for t, m in sorted(images.items())) or "none"
        if topic is None:
            if not images:
                raise SourceError(f"{self.path}: the bag has no image topics (topics: {', '.join(reader.topics)})")
            topic = sorted(images)[0]
        elif topic not in images:
            found = "exists but is not an image topic" if topic in reader.topics else "is not in the bag"
            raise SourceError(f"{self.path}: topic '{topic}' {found}; image topics: {listing}")
        self.topic = topic
        self.msgtype = images[topic]
        self.num_frames: int = int(reader.topics[topic].msgcount)
        span_s = reader.duration * 1e-9
        self.fps: float | None = (self.num_frames - 1) / span_s if self.num_frames > 1 and span_s > 0 else None
        self._typestore = get_typestore(Stores.LATEST)
        self._register_missing_types(reader.topics[topic].msgdef)

    def _register_missing_types(self, msgdef: Any) -> None:
        """Types the store lacks (a bag from a newer distro) are read from the bag's own message definition."""
        if self.msgtype in self._typestore.fielddefs or msgdef is None or not getattr(msgdef, "data", ""):
            return
        self._typestore.register(get_types_from_msg(msgdef.data, self.msgtype))

    def _pass(self) -> Iterator[tuple[np.ndarray, int, str]]:
        """One pass over the topic: ``(rgb, stamp_ns, frame_id)``."""
        with Reader(self.path) as reader:
            connections = [c for c in reader.connections if c.topic == self.topic]
            for index, (conn, bag_ns, raw) in enumerate(reader.messages(connections=connections)):
                try:
                    msg = self._typestore.deserialize_cdr(raw, conn.msgtype)
                    rgb = message_to_rgb(msg, conn.msgtype)
                except (ImageDecodeError, SerdeError, ValueError, IndexError) as exc:  # a damaged message
                    log.warning("%s: %s message %d skipped: %s", self.path, self.topic, index, exc)
                    continue
                stamp = int(msg.header.stamp.sec) * 1_000_000_000 + int(msg.header.stamp.nanosec)
                yield rgb, (stamp or int(bag_ns)), (msg.header.frame_id or self.default_frame_id)

    def __iter__(self) -> Iterator[Frame]:
        self._closed = False
        seq = 0
        offset = 0
        while True:
            first_ns = last_ns = None
            for image, stamp, frame_id in self._pass():
                if self._closed:
                    return
                first_ns = stamp if first_ns is None else first_ns
                last_ns = stamp
                yield Frame(image=image, stamp_ns=stamp + offset, frame_id=frame_id, seq=seq,
                            meta={"source": self.name, "topic": self.topic})
                seq += 1
            if not self.loop or first_ns is None:
                return
            period = int(1e9 / self.fps) if self.fps else 1
            offset += last_ns - first_ns + period  # the next pass continues where this one ended

    def close(self) -> None:
        self._closed = True

    def __enter__(self) -> "BagSource":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
