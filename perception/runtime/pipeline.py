"""The pipeline: source -> (latest-only slot) -> perceiver -> sinks, with exact counts.

A producer thread reads the source into a ``LatestSlot``; the calling thread (so that Ctrl-C reaches it) processes
the newest frame and hands the result to every sink. Two modes:

* ``realtime=True``: the source is paced at its own rate (``perception.io.pacing.paced``; live sources pace
  themselves). When processing is slower than the source, the frames it could not take are dropped and counted,
  never queued: the output always follows the newest input, as a robot needs.
* ``realtime=False``: the producer reads as fast as possible but waits until the consumer took the previous frame,
  so every frame is processed (no drops, for evaluation). Decoding the next frame overlaps processing this one.

Counts are exact: at the end ``frames_read == frames_processed + frames_dropped + frames_failed`` (``failed`` is 1
only when processing raised). Latency is measured from the moment the producer handed a frame over (right after
the source released it in real time; after the previous frame was taken otherwise, so that lock-step waiting does
not count) to the moment its result was ready; time in the slot waiting for a busy consumer counts. The pipeline
closes the source and every sink, also on errors and Ctrl-C.

``pipelined=True`` (``runtime.pipelined``; a processor with ``encode`` and ``finish``, as ``Perceiver`` has): this
thread encodes and a second one (``perception.runtime.staged.TwoStage``) finishes each frame (detection, sinks)
while the next is encoded; every encoded frame is finished in order. After an error the frame being encoded is not
finished either, so ``frames_failed`` can be 2.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import defaultdict
from dataclasses import asdict, dataclass, field
from typing import Callable, Iterable, Protocol, Sequence

import numpy as np

from perception.io.frame import Frame, FrameSource
from perception.runtime.latest import LatestSlot, SlotClosed
from perception.runtime.result import PerceptionResult
from perception.runtime.sinks import Sink
from perception.runtime.staged import TwoStage
from perception.runtime.stats import percentiles

log = logging.getLogger(__name__)


class FrameProcessor(Protocol):
    def process(self, frame: Frame) -> PerceptionResult: ...


@dataclass
class RunStats:
    """What a run did. ``fps`` is processed frames per second of wall time; ``read_fps`` the input rate."""

    frames_read: int = 0
    frames_processed: int = 0
    frames_dropped: int = 0
    frames_failed: int = 0
    keyframes: int = 0
    elapsed_s: float = 0.0
    fps: float = 0.0
    read_fps: float = 0.0
    latency_ms: dict = field(default_factory=dict)
    stage_ms: dict = field(default_factory=dict)
    stop_reason: str = ""  # end | max_frames | duration | interrupted | error
    realtime: bool = False
    source: str = ""
    error: str | None = None

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class Progress:
    """Snapshot handed to the progress callback after each processed frame."""

    read: int
    processed: int
    dropped: int
    elapsed_s: float
    last: PerceptionResult


def _summary(values: Sequence[float]) -> dict:
    out = {k: (None if v is None else round(v, 3)) for k, v in percentiles(values).items()}
    out["mean"] = round(float(np.mean(values)), 3) if len(values) else None
    out["max"] = round(float(np.max(values)), 3) if len(values) else None
    return out


class Pipeline:
    """``Pipeline(source, perceiver, sinks, realtime).run(max_frames, duration_s) -> RunStats``."""

    def __init__(self, source: FrameSource, perceiver: FrameProcessor, sinks: Sequence[Sink] = (),
                 realtime: bool = False, rate_hz: float | None = None,
                 progress: Callable[[Progress], None] | None = None, join_timeout_s: float = 5.0,
                 pipelined: bool = False) -> None:
        if pipelined and not (hasattr(perceiver, "encode") and hasattr(perceiver, "finish")):
            raise TypeError(f"Pipeline: pipelined=True needs a processor with encode() and finish() "
                            f"(a Perceiver); {type(perceiver).__name__} has only process()")
        self.source = source
        self.perceiver = perceiver
        self.pipelined = pipelined
        self.sinks = list(sinks)
        self.realtime = realtime
        self.rate_hz = rate_hz
        self.progress = progress
        self.join_timeout_s = join_timeout_s
        self.stats: RunStats | None = None
        self._slot: LatestSlot[tuple[Frame, float]] = LatestSlot()
        self._stop = threading.Event()
        self._discarded = 0
        self._producer_error: BaseException | None = None
        self._source_ended = False
        self._close_error: BaseException | None = None

    # -- producer ------------------------------------------------------------------------------------------------
    def _frames(self) -> Iterable[Frame]:
        if self.realtime:
            from perception.io.pacing import paced  # noqa: PLC0415 (pacing only matters in real-time runs)

            return paced(self.source, rate_hz=self.rate_hz)
        return self.source

    def _produce(self, max_frames: int | None) -> None:
        read = 0
        try:
            if max_frames is not None and max_frames <= 0:
                return
            for frame in self._frames():
                if self._stop.is_set():
                    self._discarded += 1
                    break
                if not self.realtime and not self._slot.wait_empty():
                    self._discarded += 1  # closed by the consumer while we waited
                    break
                try:
                    self._slot.put((frame, time.monotonic()))
                except SlotClosed:
                    self._discarded += 1
                    break
                read += 1
                if max_frames is not None and read >= max_frames:
                    break
            else:
                self._source_ended = True
        except BaseException as exc:  # noqa: BLE001 - reported by run() in the caller's thread
            self._producer_error = exc
        finally:
            self._slot.close()

    # -- consumer ------------------------------------------------------------------------------------------------
    def run(self, max_frames: int | None = None, duration_s: float | None = None) -> RunStats:
        """Run until the source ends, ``max_frames`` were read, ``duration_s`` passed, or Ctrl-C.

        Errors of the source, the perceiver or a sink are re-raised after shutdown; ``self.stats`` then holds the
        counts up to the error. Ctrl-C ends the run normally with ``stop_reason == "interrupted"``.
        """
        latencies: list[float] = []
        stages: dict[str, list[float]] = defaultdict(list)
        processed = keyframes = 0
        reason, error = "", None
        started = time.monotonic()
        failures: list[BaseException] = []

        def complete(frame: Frame, got_at: float, result: PerceptionResult) -> None:
            nonlocal processed, keyframes
            latencies.append((time.monotonic() - got_at) * 1000.0)
            sink_start = time.perf_counter()
            for sink in self.sinks:
                sink.write(result, frame)
            processed += 1
            keyframes += int(bool(result.keyframe))
            for name, value in result.timings_ms.items():
                stages[name].append(float(value))
            stages["sinks"].append((time.perf_counter() - sink_start) * 1000.0)
            if self.progress is not None:
                counts = self._slot.counts()
                self.progress(Progress(counts["put"], processed, counts["dropped"], time.monotonic() - started,
                                       result))

        def finish(item: tuple[Frame, float, object]) -> None:
            if not failures:  # after a failure nothing more is finished (those frames count as failed)
                complete(item[0], item[1], self.perceiver.finish(item[2]))  # type: ignore[attr-defined]

        tail = (TwoStage(finish, lambda item, exc: failures.append(exc), name="pipeline_finish")
                if self.pipelined else None)
        producer = threading.Thread(target=self._produce, args=(max_frames,), name="pipeline_producer", daemon=True)
        producer.start()
        try:
            while True:
                if failures:
                    raise failures[0]
                if duration_s is not None and time.monotonic() - started >= duration_s:
                    reason = "duration"
                    break
                item = self._slot.get(timeout=0.05)
                if item is None:
                    if self._slot.closed and not self._slot.pending:
                        break
                    continue
                frame, got_at = item
                if tail is None:
                    complete(frame, got_at, self.perceiver.process(frame))
                else:
                    tail.submit((frame, got_at, self.perceiver.encode(frame)))  # type: ignore[attr-defined]
            if tail is not None:
                tail.close(None)  # the frames in flight are finished
                if failures:
                    raise failures[0]
        except KeyboardInterrupt:
            reason = "interrupted"
        except BaseException as exc:
            reason, error = "error", exc
        finally:
            if tail is not None:
                tail.close(self.join_timeout_s)
            self._shutdown(producer)
        for late in (self._producer_error, self._close_error):
            if error is None and late is not None:
                reason, error = "error", late
        if not reason:
            reason = "end" if self._source_ended or max_frames is None else "max_frames"
        self.stats = self._stats(processed, keyframes, latencies, stages, reason, error, time.monotonic() - started)
        if error is not None:
            raise error
        return self.stats

    def _shutdown(self, producer: threading.Thread) -> None:
        """Stop the producer, close the source, then close every sink (each even if another one fails)."""
        self._stop.set()
        self._slot.close()
        producer.join(self.join_timeout_s)
        if producer.is_alive():
            log.warning("pipeline: the source did not stop within %.1f s; closing it under the reader",
                        self.join_timeout_s)
        errors: list[BaseException] = []
        for closer in [self.source.close, *(sink.close for sink in self.sinks)]:
            try:
                closer()
            except Exception as exc:  # noqa: BLE001 - every sink gets closed; the first error is raised after
                log.error("pipeline: closing %r failed: %s", closer, exc)
                errors.append(exc)
        producer.join(self.join_timeout_s)
        if errors and self._close_error is None:
            self._close_error = errors[0]

    def _stats(self, processed: int, keyframes: int, latencies: list[float], stages: dict[str, list[float]],
               reason: str, error: BaseException | None, elapsed: float) -> RunStats:
        counts = self._slot.counts()
        taken = counts["taken"]
        read = counts["put"] + self._discarded
        dropped = counts["dropped"] + counts["pending"] + self._discarded
        return RunStats(
            frames_read=read, frames_processed=processed, frames_dropped=dropped, frames_failed=taken - processed,
            keyframes=keyframes, elapsed_s=round(elapsed, 4),
            fps=round(processed / elapsed, 3) if elapsed > 0 else 0.0,
            read_fps=round(read / elapsed, 3) if elapsed > 0 else 0.0,
            latency_ms=_summary(latencies), stage_ms={k: _summary(v) for k, v in stages.items()},
            stop_reason=reason, realtime=self.realtime, source=str(getattr(self.source, "name", "")),
            error=None if error is None else f"{type(error).__name__}: {error}",
        )
