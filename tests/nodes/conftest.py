"""Fixtures for tests with real rclpy: an isolated context and domain per test, a background executor."""

from __future__ import annotations

import itertools
import os
import threading
import time
from typing import Callable

import pytest

rclpy = pytest.importorskip("rclpy")
from rclpy.executors import MultiThreadedExecutor  # noqa: E402
from rclpy.impl.implementation_singleton import rclpy_implementation  # noqa: E402

InvalidHandle = rclpy_implementation.InvalidHandle

_domains = itertools.count()


def next_domain_id() -> int:
    """A domain id for this process and test (0..101 are valid; stay inside 1..99)."""
    return 1 + (os.getpid() * 7 + next(_domains)) % 99


class RosHarness:
    """A context, a domain id, nodes added to one background executor."""

    def __init__(self) -> None:
        self.domain_id = next_domain_id()
        self.context = rclpy.Context()
        rclpy.init(context=self.context, domain_id=self.domain_id)
        self.executor = MultiThreadedExecutor(num_threads=4, context=self.context)
        self.nodes = []
        self._thread = threading.Thread(target=self._spin, daemon=True)
        self._running = True
        self._thread.start()

    def _spin(self) -> None:
        while self._running and self.context.ok():
            try:
                self.executor.spin_once(timeout_sec=0.05)
            except InvalidHandle:
                # a node destroyed an entity (a lifecycle deactivate unsubscribing) on one of the executor's threads
                # while this one built the wait set: the next wait set no longer has it (a race of the multi-threaded
                # executor; the nodes' own single-threaded spin cannot meet it)
                continue
            except Exception:  # noqa: BLE001 - shutdown races
                if not self._running:
                    return
                raise

    def add(self, node):
        self.nodes.append(node)
        self.executor.add_node(node)
        return node

    def env(self) -> dict:
        return {"ROS_DOMAIN_ID": str(self.domain_id)}

    def close(self) -> None:
        self._running = False
        self._thread.join(timeout=2.0)
        for node in self.nodes:
            self.executor.remove_node(node)
            node.destroy_node()
        self.executor.shutdown()
        rclpy.shutdown(context=self.context)


@pytest.fixture
def ros():
    harness = RosHarness()
    yield harness
    harness.close()


def _wait_for(predicate: Callable[[], bool], timeout: float = 10.0, period: float = 0.02) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(period)
    return predicate()


@pytest.fixture
def wait_for():
    """``wait_for(predicate, timeout=10.0) -> bool``: poll until the predicate holds."""
    return _wait_for
