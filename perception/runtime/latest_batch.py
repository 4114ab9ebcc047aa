"""A latest-only hand-off per key (camera) with one consumer that takes every camera's newest item at once.

The multi-camera node's subscription callbacks ``put(camera, item)``; its worker ``take_all()`` gets the newest
item of each camera that has one waiting, which becomes one batch through the encoder. As with ``LatestSlot``, the
producer never blocks, memory never grows, and an item replaced before it was taken is counted as dropped for its
camera: ``put[c] == taken[c] + dropped[c] + pending[c]``.
"""

from __future__ import annotations

import threading
from collections import Counter
from typing import Generic, TypeVar

T = TypeVar("T")


class LatestPerKey(Generic[T]):
    """Thread-safe: many producers (one per key, or not), one consumer."""

    def __init__(self) -> None:
        self._cond = threading.Condition(threading.Lock())
        self._items: dict[str, T] = {}
        self._closed = False
        self.put_count: Counter[str] = Counter()
        self.taken: Counter[str] = Counter()
        self.dropped: Counter[str] = Counter()

    def put(self, key: str, item: T) -> bool:
        """Offer ``item`` for ``key``; True when it replaced an untaken item (counted as dropped)."""
        with self._cond:
            replaced = key in self._items
            if replaced:
                self.dropped[key] += 1
            self._items[key] = item
            self.put_count[key] += 1
            self._cond.notify()
            return replaced

    def take_all(self, timeout: float | None = None) -> dict[str, T]:
        """The newest item of every key that has one, waiting up to ``timeout`` s for the first; ``{}`` on timeout
        or once closed and drained."""
        with self._cond:
            if not self._items and not self._closed:
                self._cond.wait_for(lambda: bool(self._items) or self._closed, timeout=timeout)
            items, self._items = self._items, {}
            self.taken.update(items.keys())
            return items

    def close(self) -> None:
        with self._cond:
            self._closed = True
            self._cond.notify_all()

    @property
    def closed(self) -> bool:
        return self._closed
