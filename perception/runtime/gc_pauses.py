"""Python's cyclic garbage collector in a real-time node: every collection counted and timed.

A collection holds the interpreter lock while it walks the objects of the generations it collects, so every thread
of a node (the executor taking images, the encoder's Python glue, the detector) waits for it; after start-up a
perception node holds about 220,000 tracked objects (the model's modules and parameters, rclpy, numpy and OpenCV
bindings), and a full collection walks all of them (51-85 ms on the 2-core machine). ``GcPauses`` records every
collection through ``gc.callbacks``: how many, how many full, the longest pause and their total, for
``/diagnostics`` (``gc_collections``, ``gc_full_collections``, ``gc_max_pause_ms``, ``gc_pause_ms_total``), so a
latency spike can be told from a collector pause. Measured in the graph bench (vtest at 30 Hz, 300 frames): one
young collection of 0.2 ms in a whole run; a frame's objects are freed by reference counting, so freezing the
start-up objects (``gc.freeze``) changed nothing and is not done.
"""

from __future__ import annotations

import gc
import threading
import time


class GcPauses:
    """``install()`` starts recording collections; ``values()`` -> counters; ``remove()`` stops."""

    def __init__(self) -> None:
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
        with self._lock:
            generation = int(info.get("generation", 0))
            self.collections[min(max(generation, 0), 2)] += 1
            self.max_pause_ms = max(self.max_pause_ms, pause)
            self.total_ms += pause

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
