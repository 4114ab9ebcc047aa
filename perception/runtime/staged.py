"""``TwoStage``: the second half of each frame's work on its own thread, so that it overlaps the next frame's first.

A frame's work splits where the model's output is ready (``Perceiver.encode`` / ``Perceiver.finish``): the encoder
on one side; detection, the stream monitor and publishing on the other. Run one after the other, a frame costs their
sum; run as a two-stage pipeline, the frame rate is set by the longer half while latency stays their sum plus at
most one wait. On the 2-core CPU the halves of the default pipeline take about 25 and 10 ms while they share the
cores (the bench's stage medians), so a latest-only consumer at 30 Hz gets time back for every frame (numbers in
the README's performance section).

Hand-off: ``submit(item)`` queues ``item`` for ``finish(item)`` on the worker and returns at once, unless an earlier
item is still queued, in which case it waits until the worker takes that one. So at most one item waits between the
halves, none is dropped or reordered (the tracker in the second half needs every encoded frame in order), and a
slow second half slows the first instead of growing a queue. ``finish`` handles its own errors; anything that still
escapes goes to ``on_error(item, exc)`` and the worker carries on. ``drain()`` waits until every submitted item is
finished; ``close()`` finishes what was submitted and stops the worker.
"""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Callable
from typing import Any

log = logging.getLogger(__name__)

_STOP = object()


class TwoStage:
    """Runs ``finish(item)`` for each submitted item, in order, on one worker thread."""

    def __init__(self, finish: Callable[[Any], None], on_error: Callable[[Any, BaseException], None] | None = None,
                 name: str = "second_stage") -> None:
        self._finish = finish
        self._on_error = on_error
        self._queue: queue.Queue = queue.Queue(maxsize=1)
        self._closed = False
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    def submit(self, item: Any) -> None:
        """Queue ``item``; waits while an earlier item is still queued. Raises ``RuntimeError`` after ``close``."""
        if self._closed:
            raise RuntimeError("TwoStage.submit: the stage is closed")
        self._queue.put(item)

    def drain(self) -> None:
        """Wait until every submitted item has been finished."""
        self._queue.join()

    def close(self, timeout: float | None = 5.0) -> bool:
        """Finish what was submitted, then stop the worker; False when it did not stop within ``timeout`` s (None:
        wait as long as it takes)."""
        if not self._closed:
            self._closed = True
            self._queue.put(_STOP)
        self._thread.join(timeout)
        return not self._thread.is_alive()

    @property
    def alive(self) -> bool:
        return self._thread.is_alive()

    def _report(self, item: Any, exc: Exception) -> None:
        try:
            if self._on_error is not None:
                self._on_error(item, exc)
                return
        except Exception:  # noqa: BLE001 - an error handler that fails is logged, not fatal to the worker
            log.exception("second stage: the error handler failed")
        log.error("second stage: an item failed: %s: %s", type(exc).__name__, exc)

    def _run(self) -> None:
        while True:
            item = self._queue.get()
            try:
                if item is _STOP:
                    return
                self._finish(item)
            except Exception as exc:  # noqa: BLE001 - the worker must outlive one bad frame
                self._report(item, exc)
            finally:
                self._queue.task_done()
