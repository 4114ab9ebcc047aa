"""Python's cyclic garbage collector in a real-time node: every collection counted and timed.

A collection holds the interpreter lock while it walks the objects of the generations it collects, so every thread
of a node (the executor taking images, the encoder's Python glue, the detector) waits for it; after start-up a
perception node holds about 220,000 tracked objects (the model's modules and parameters, rclpy, numpy and OpenCV
bindings), and a full collection walks all of them (51-85 ms on the 2-core machine). ``GcPauses`` records every
collection through ``gc.callbacks``: how many, how many full, the longest pause and their total, for
``/diagnostics`` (``gc_collections``, ``gc_full_collections``, ``gc_max_pause_ms``, ``gc_pause_ms_total``), so a
latency spike can be told from a collector pause; a pause of ``warn_ms`` or more is also logged (``warn``).

``freeze_start_up()`` collects once, then moves every object alive (the model, rclpy, the bindings) to the
permanent generation (``gc.freeze``), so that later collections, full ones included, walk only what the stream
allocated since. Graph bench runs (vtest at 30 Hz, 300 frames) with the fp32 encoder counted one full collection
of 95-118 ms after the node's start-up (when was not recorded); with the freeze, the only full collection in three
runs was the freeze's own (94-123 ms), before the node subscribes, and one young collection followed.
"""

from __future__ import annotations

import gc
import threading
import time
from typing import Callable


class GcPauses:
    """``install()`` starts recording collections; ``values()`` -> counters; ``remove()`` stops. ``warn(message)``
    is called after each collection that paused for ``warn_ms`` or more."""

    def __init__(self, warn_ms: float = 0.0, warn: Callable[[str], None] | None = None) -> None:
        self.warn_ms = float(warn_ms)
        self.warn = warn
        self.collections = [0, 0, 0]
        self.max_pause_ms = 0.0
        self.total_ms = 0.0
        self._started: float | None = None
        self._lock = threading.Lock()
        self._installed = False

    def _callback(self, phase: str, info: dict) -> None:
        if phase == "start":
            self._started = time.perf_counter()
            return
        if self._started is None:
            return
        pause = (time.perf_counter() - self._started) * 1000.0
        self._started = None
        generation = min(max(int(info.get("generation", 0)), 0), 2)
        with self._lock:
            self.collections[generation] += 1
            self.max_pause_ms = max(self.max_pause_ms, pause)
            self.total_ms += pause
        if self.warn is not None and pause >= self.warn_ms:
            self.warn(f"garbage collection of generation {generation} ({info.get('collected', 0)} objects freed) "
                      f"held every thread for {pause:.0f} ms")

    def install(self) -> GcPauses:
        if not self._installed:
            gc.callbacks.append(self._callback)
            self._installed = True
        return self

    def remove(self) -> None:
        if self._installed:
            gc.callbacks.remove(self._callback)
            self._installed = False

    def values(self) -> dict[str, float | int]:
        with self._lock:
            return {"gc_collections": sum(self.collections), "gc_full_collections": self.collections[2],
                    "gc_max_pause_ms": round(self.max_pause_ms, 2), "gc_pause_ms_total": round(self.total_ms, 2)}


def freeze_start_up() -> int:
    """Collect, then freeze every object alive now (module docstring); returns how many were frozen."""
    gc.collect()
    gc.freeze()
    return gc.get_freeze_count()
