"""``ResilientPerceiver``: the faults a deployed perceiver must survive, handled in one place.

* Non-finite output. A model that produces NaN or inf (a bad adaptation step, fp16 overflow, a corrupt input) must not
  publish it: the frame is dropped and counted (``NonFiniteOutput``), the stream's streaming state is reset (memory
  tokens that hold NaN would poison every later frame), and the adaptation guard is told, which rolls the adapted
  weights back to the last good snapshot (or to the source model after repeated trips), as it does for its own
  non-finite signal (``perception.adaptation.guard``).
* Device out of memory (``torch.OutOfMemoryError``, raised by CUDA allocations). The perceiver degrades one step at a
  time and retries the frame: first it stops online adaptation (its worker, buffer and model copy hold memory), then
  it halves the encoder input resolution, down to ``min_side`` pixels. Every step is logged with what was done and is
  listed in ``degradations`` (reported in ``/diagnostics``), so an operator sees that the node runs degraded and why.
  When no step is left the error propagates and the frame fails.

The wrapper only calls ``Perceiver``'s public surface plus its lock, so inference stays lock-step with the swap.
"""

from __future__ import annotations

import logging
from typing import Any, Callable

import numpy as np
import torch

from perception.io.frame import Frame
from perception.runtime.result import PerceptionResult

log = logging.getLogger(__name__)

DEFAULT_STREAM = "default"


class NonFiniteOutput(RuntimeError):
    """The model produced NaN or inf for a frame; the frame is dropped. The message says which output and how much."""


def non_finite_report(result: PerceptionResult) -> str:
    """Empty when every output is finite, else e.g. ``"features: 120 of 9600 values non-finite"``."""
    parts = []
    for name in ("features", "global_embedding"):
        value = getattr(result, name)
        if value is None:
            continue
        bad = int(np.size(value) - np.count_nonzero(np.isfinite(value)))
        if bad:
            parts.append(f"{name}: {bad} of {np.size(value)} values non-finite")
    return "; ".join(parts)


def inform_guard(adapter: Any, reason: str) -> str:
    """Count a trip of ``adapter``'s guard for ``reason``: it publishes the weights and statistics it falls back to
    (``OnlineAdapter.trip``: the last good snapshot, or the source after ``max_trips``); returns the action taken."""
    action = adapter.trip(reason)
    log.warning("adaptation guard informed (%s): %s", reason, action)
    return action


class ResilientPerceiver:
    """Wraps a ``Perceiver``: ``process(frame, stream)`` with non-finite and out-of-memory handling.

    adapter: the ``OnlineAdapter`` attached to the perceiver, if any.
    min_side: the smallest encoder input side the out-of-memory ladder goes down to.
    warn: where degradation notes go besides the module logger (a node passes its ROS logger's ``warning``).
    """

    def __init__(self, perceiver: Any, adapter: Any = None, min_side: int = 32,
                 warn: Callable[[str], None] | None = None) -> None:
        self.perceiver = perceiver
        self.adapter = adapter
        self.min_side = int(min_side)
        self.warn = warn
        self.non_finite = 0
        self.out_of_memory = 0
        self.degradations: list[str] = []
        self.adaptation_skipped = False

    # -- the ladder ----------------------------------------------------------------------------------------------
    def _say(self, step: str, exc: BaseException) -> str:
        self.degradations.append(step)
        note = f"out of memory on {self.perceiver.device} ({exc}): {step}"
        log.warning(note)
        if self.warn is not None:
            self.warn(note)
        return note

    def degrade(self, frame: Frame, exc: BaseException) -> str | None:
        """Take the next step down after ``exc``; the note, or None when nothing is left to give up."""
        p = self.perceiver
        if self.adapter is not None and not self.adaptation_skipped:
            p.attach_adapter(None)
            self.adapter.stop(save=True)
            self.adaptation_skipped = True
            return self._say("online adaptation stopped to free memory", exc)
        pre = p.preprocess
        width, height = (pre.input_width or frame.width), (pre.input_height or frame.height)
        new_w, new_h = width // 2, height // 2
        if min(new_w, new_h) < self.min_side:
            return None
        with p._lock:  # noqa: SLF001 - no frame is in the encoder while its input size changes
            p.preprocess = pre.resized(new_w, new_h)
            p.reset()  # streaming state was built at the old resolution
        return self._say(f"encoder input lowered from {width}x{height} to {new_w}x{new_h}", exc)

    def _release(self) -> None:
        if self.perceiver.device.type == "cuda":
            torch.cuda.empty_cache()

    # -- processing ----------------------------------------------------------------------------------------------
    def process(self, frame: Frame, stream: str = DEFAULT_STREAM) -> PerceptionResult:
        """The perceiver's result for ``frame``; ``NonFiniteOutput`` when the model gave NaN/inf (frame dropped)."""
        return self.finish(self.encode(frame, stream), stream)

    def encode(self, frame: Frame, stream: str = DEFAULT_STREAM) -> Any:
        """``Perceiver.encode`` down the out-of-memory ladder (the half that holds the model's memory)."""
        while True:
            try:
                return self.perceiver.encode(frame, stream)
            except torch.OutOfMemoryError as exc:
                self.out_of_memory += 1
                self._release()
                if self.degrade(frame, exc) is None:
                    raise

    def finish(self, encoded: Any, stream: str = DEFAULT_STREAM) -> PerceptionResult:
        """``Perceiver.finish``, then the non-finite check (``NonFiniteOutput``: the frame is dropped, the stream's
        state reset, the adaptation guard told)."""
        result = self.perceiver.finish(encoded)
        report = non_finite_report(result)
        if report:
            self.non_finite += 1
            self.perceiver.reset(stream)
            action = ""
            if self.adapter is not None and not self.adaptation_skipped:
                action = f"; adaptation guard: {inform_guard(self.adapter, f'non-finite model output ({report})')}"
            raise NonFiniteOutput(f"frame {encoded.frame.seq}: model output is not finite ({report}); frame "
                                  f"dropped, stream state reset{action}")
        return result

    def values(self) -> dict[str, Any]:
        """Counters for ``/diagnostics``."""
        pre = self.perceiver.preprocess
        return {"non_finite_outputs": self.non_finite, "out_of_memory": self.out_of_memory,
                "degraded": "; ".join(self.degradations) or "no",
                "encoder_input": f"{pre.input_width}x{pre.input_height}"}
