"""A latest-only hand-off between one producer and one consumer (a bounded "queue" of depth one).

The producer never blocks and memory never grows: ``put`` replaces an item the consumer has not taken yet and
counts the replaced one as dropped. This is the keep-last-1 policy of ROS 2 sensor-data QoS and the latest-only
queue between callbacks and heavy work in ``image_pipeline``'s camera_calibration, applied inside one process.

Counters are exact and consistent under the lock: at any moment
``put_count == taken + dropped + (1 if pending else 0)``.
"""

from __future__ import annotations

import threading
from typing import Generic, TypeVar

T = TypeVar("T")


class SlotClosed(RuntimeError):
    """``put`` was called on a closed ``LatestSlot``."""


class LatestSlot(Generic[T]):
    """Single-item, thread-safe hand-off. ``put`` replaces, ``get`` waits for the newest item or a close."""

    def __init__(self) -> None:
        self._cond = threading.Condition(threading.Lock())
        self._item: T | None = None
        self._pending = False
        self._closed = False
        self.put_count = 0
        self.taken = 0
        self.dropped = 0

    def put(self, item: T) -> bool:
        """Offer ``item``; returns True when it replaced an unconsumed item (which is counted as dropped).

        Raises ``SlotClosed`` after ``close()``, so a producer notices that nobody will consume any more.
        """
        with self._cond:
            if self._closed:
                raise SlotClosed("put() on a closed LatestSlot")
            replaced = self._pending
            if replaced:
                self.dropped += 1
            self._item = item
            self._pending = True
            self.put_count += 1
            self._cond.notify()
            return replaced

    def get(self, timeout: float | None = None) -> T | None:
        """The newest unconsumed item, waiting up to ``timeout`` seconds (``None``: forever).

        Returns ``None`` on timeout, or when the slot is closed and empty. An item put before ``close()`` is still
        delivered, so a consumer can drain the last frame.
        """
        with self._cond:
            if not self._pending and not self._closed:
                self._cond.wait_for(lambda: self._pending or self._closed, timeout=timeout)
            if not self._pending:
                return None
            item = self._item
            self._item = None
            self._pending = False
            self.taken += 1
            self._cond.notify_all()
            return item

    def wait_empty(self, timeout: float | None = None) -> bool:
        """Block until the pending item was taken (or the slot closed); True when it is empty.

        Lets a producer hand over every item without drops (lock-step, for evaluation runs).
        """
        with self._cond:
            return self._cond.wait_for(lambda: not self._pending or self._closed, timeout=timeout) and not self._pending

    def close(self) -> None:
        """Wake every waiter; later ``get`` calls return the pending item, if any, then ``None``."""
        with self._cond:
            self._closed = True
            self._cond.notify_all()

    @property
    def closed(self) -> bool:
        return self._closed

    @property
    def pending(self) -> bool:
        with self._cond:
            return self._pending

    def counts(self) -> dict[str, int]:
        """A consistent snapshot: ``{"put": .., "taken": .., "dropped": .., "pending": 0|1}``."""
        with self._cond:
            return {"put": self.put_count, "taken": self.taken, "dropped": self.dropped, "pending": int(self._pending)}
