"""The shared ``main()`` body of the nodes: init, spin until Ctrl-C / shutdown (or a node's own end), clean up."""

from __future__ import annotations

from typing import Callable

import rclpy
from rclpy.executors import ExternalShutdownException
from rclpy.node import Node


def run_node(make_node: Callable[[], Node], args=None, finished: Callable[[Node], bool] | None = None) -> None:
    """Create the node, spin it until SIGINT/SIGTERM or ``finished(node)``, then ``close()`` (if any) and destroy it."""
    rclpy.init(args=args)
    node = make_node()
    try:
        if finished is None:
            rclpy.spin(node)
        else:
            while rclpy.ok() and not finished(node):
                rclpy.spin_once(node, timeout_sec=0.1)
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    finally:
        close = getattr(node, "close", None)
        if callable(close):
            close()
        node.destroy_node()
        rclpy.try_shutdown()
