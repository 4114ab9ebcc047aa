"""Frames of a live image topic for the command line (``dualstream calibrate --topic``), read with a private rclpy
context so the ROS-free core never imports ROS: the command imports this module lazily, only when asked to.

Subscribes with best-effort, keep-last QoS (it matches both reliable and best-effort publishers); a consumer slower
than the topic sees the newest few frames, not a growing backlog. ``*/compressed`` topics are read as
sensor_msgs/CompressedImage, others as sensor_msgs/Image.
"""

from __future__ import annotations

import collections
import time
from typing import Iterator

import numpy as np
import rclpy
from rclpy.executors import SingleThreadedExecutor
from rclpy.node import Node
from sensor_msgs.msg import CompressedImage, Image

from dualstream_perception.conversions import compressed_to_rgb, image_to_rgb
from dualstream_perception.qos import image_qos
from perception.io.image_codec import ImageDecodeError

BACKLOG = 4


def read_topic_frames(topic: str, duration_s: float, every: int = 1,
                      node_name: str = "dualstream_topic_reader") -> Iterator[tuple[str, np.ndarray]]:
    """``(name, (H, W, 3) uint8 RGB)`` for every ``every``-th message of ``topic`` received within ``duration_s``."""
    compressed = topic.rstrip("/").endswith("compressed")
    context = rclpy.Context()
    rclpy.init(context=context)
    node = Node(node_name, context=context)
    executor = SingleThreadedExecutor(context=context)
    executor.add_node(node)
    pending: collections.deque = collections.deque(maxlen=BACKLOG)
    node.create_subscription(CompressedImage if compressed else Image, topic, lambda msg: pending.append(msg),
                             image_qos("best_effort", BACKLOG))
    received = 0
    try:
        deadline = time.monotonic() + duration_s
        while time.monotonic() < deadline and context.ok():
            executor.spin_once(timeout_sec=0.05)
            while pending:
                msg = pending.popleft()
                received += 1
                if (received - 1) % max(every, 1):
                    continue
                try:
                    rgb = compressed_to_rgb(msg) if compressed else image_to_rgb(msg)
                except ImageDecodeError as exc:
                    node.get_logger().warning(f"{topic}: message {received} skipped: {exc}")
                    continue
                yield f"msg{received:06d}", rgb
    finally:
        executor.shutdown()
        node.destroy_node()
        rclpy.shutdown(context=context)
