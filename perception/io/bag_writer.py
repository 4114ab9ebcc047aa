"""Writing rosbag2 bags (sqlite3 or mcap) from serialized CDR messages, through the ``rosbags`` library.

Raw CDR bytes from ``create_subscription(..., raw=True)`` go straight in (they are byte-identical to what rosbags
serializes, ROS2_NOTES), so recording costs no deserialization.
"""

from __future__ import annotations

import struct
from pathlib import Path

from rosbags.rosbag2 import StoragePlugin, Writer

from perception.io.bag_types import typestore

STORAGES = {"mcap": StoragePlugin.MCAP, "sqlite3": StoragePlugin.SQLITE3}


def header_stamp_ns(cdr: bytes | memoryview) -> int | None:
    """The ``header.stamp`` of a CDR message whose first field is ``std_msgs/Header`` (None if too short).

    CDR starts with a 4-byte encapsulation header (byte 1: 0 big-endian, 1 little-endian), then ``int32 sec`` and
    ``uint32 nanosec``.
    """
    if len(cdr) < 12:
        return None
    order = "<" if cdr[1] & 1 else ">"
    sec, nanosec = struct.unpack_from(order + "iI", cdr, 4)
    return sec * 1_000_000_000 + nanosec


class BagWriter:
    """``BagWriter(path, storage="mcap")``; ``add_topic(topic, msgtype)``; ``write(topic, log_time_ns, cdr)``.

    The bag folder must not exist yet (rosbags refuses to overwrite). Close it (or use ``with``) to finalise.
    """

    def __init__(self, path: str | Path, storage: str = "mcap") -> None:
        if storage not in STORAGES:
            raise ValueError(f"bag storage '{storage}': expected one of {sorted(STORAGES)}")
        self.path = Path(path)
        if self.path.exists():
            raise FileExistsError(f"bag {self.path} already exists; choose a new folder")
        self._writer = Writer(self.path, version=9, storage_plugin=STORAGES[storage])
        self._writer.open()
        self._connections: dict = {}
        self.counts: dict[str, int] = {}
        self._store = typestore()

    def add_topic(self, topic: str, msgtype: str) -> None:
        """``msgtype`` as ``pkg/msg/Name`` (``sensor_msgs/msg/Image``)."""
        if topic in self._connections:
            return
        self._connections[topic] = self._writer.add_connection(topic, msgtype, typestore=self._store)
        self.counts[topic] = 0

    def write(self, topic: str, log_time_ns: int, cdr: bytes | memoryview) -> None:
        self._writer.write(self._connections[topic], int(log_time_ns), bytes(cdr))
        self.counts[topic] += 1

    def close(self) -> None:
        if self._writer is not None:
            self._writer.close()
            self._writer = None

    def __enter__(self) -> "BagWriter":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
