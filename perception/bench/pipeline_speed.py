"""The default pipeline end to end in one process: decode -> preprocess -> encoder -> detection -> monitor.

``measure_pipeline(cfg, max_frames)`` runs ``cfg.source`` through :class:`~perception.runtime.pipeline.Pipeline`
(every frame, as fast as possible: the producer thread decodes the next frame while this one is processed) with a
:class:`MonitoredPerceiver` (the ``Perceiver`` plus the ``StreamMonitor`` that the node runs after it) and reports
``fps`` (frames processed per second of wall time; ``warmup`` frames are processed once before, untimed),
``latency_ms`` (p50/p95/p99 from hand-over by the decoder to the result), ``rss_mb`` (peak resident memory of the
process), the median per stage, and ``cpu_ms_per_frame`` (process CPU time per frame: what the frames cost whatever
the load, see :mod:`perception.bench.measure`). With ``adaptation=True`` the online adapter is attached and runs
its background updates during the same measurement.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from perception.bench.measure import Stopwatch, peak_rss_mb, summary_ms
from perception.io.frame import Frame
from perception.runtime.blas import single_threaded_blas
from perception.runtime.result import PerceptionResult

log = logging.getLogger(__name__)


class MonitoredPerceiver:
    """``process(frame)``: the perceiver's result, then the stream monitor on the image and the global embedding
    (as ``perception_node`` does). ``monitor_ms`` collects the monitor's time per frame."""

    def __init__(self, perceiver: Any, monitor: Any | None) -> None:
        self.perceiver = perceiver
        self.monitor = monitor
        self.monitor_ms: list[float] = []

    def process(self, frame: Frame) -> PerceptionResult:
        return self.finish(self.perceiver.encode(frame))

    def encode(self, frame: Frame) -> Any:
        return self.perceiver.encode(frame)

    def finish(self, encoded: Any) -> PerceptionResult:
        result = self.perceiver.finish(encoded)
        frame = encoded.frame
        if self.monitor is not None:
            start = time.perf_counter()
            with single_threaded_blas():
                self.monitor.update(frame.image, result.global_embedding)
            elapsed = (time.perf_counter() - start) * 1000.0
            self.monitor_ms.append(elapsed)
            result.timings_ms["monitor"] = elapsed
            result.timings_ms["total"] = result.timings_ms.get("total", 0.0) + elapsed
        return result


def _warm(processor: MonitoredPerceiver, cfg: Any, frames: int) -> None:
    """Process the first ``frames`` frames of the source once (one-time costs: kernel selection, allocator growth,
    the detector's first frames), then forget the stream so that the timed run starts from a fresh state."""
    from perception.io.factory import open_source  # noqa: PLC0415

    source = open_source(cfg.source)
    try:
        for index, frame in enumerate(source):
            if index >= frames:
                break
            processor.process(frame)
    finally:
        source.close()
    processor.perceiver.reset()
    processor.monitor_ms.clear()


def build_perceiver(cfg: Any, adaptation: bool = False) -> tuple[Any, Any]:
    """``(MonitoredPerceiver, adapter or None)`` for ``cfg`` (a ``RunConfig``)."""
    from perception.monitor import StreamMonitor  # noqa: PLC0415
    from perception.monitor.config import MonitorConfig  # noqa: PLC0415
    from perception.runtime.perceiver import Perceiver  # noqa: PLC0415

    perceiver = Perceiver(cfg)
    adapter = None
    if adaptation:
        from perception.adaptation import attach_online_adapter  # noqa: PLC0415

        adapter, _ = attach_online_adapter(perceiver, cfg.adaptation)
    return MonitoredPerceiver(perceiver, StreamMonitor(MonitorConfig())), adapter


def measure_pipeline(cfg: Any, max_frames: int = 0, warmup: int = 8, adaptation: bool = False) -> dict:
    """Run ``cfg.source`` through the pipeline and report speed; see the module docstring for the keys."""
    from perception.io.factory import open_source  # noqa: PLC0415
    from perception.runtime.pipeline import Pipeline  # noqa: PLC0415

    processor, adapter = build_perceiver(cfg, adaptation)
    if warmup > 0:
        _warm(processor, cfg, warmup)
    pipeline = Pipeline(open_source(cfg.source), processor, realtime=False, pipelined=cfg.runtime.pipelined)
    try:
        with Stopwatch() as watch:
            stats = pipeline.run(max_frames=max_frames or None)
    finally:
        adapter_stats = adapter.stats() if adapter is not None else None
        if adapter is not None:
            adapter.stop(save=False)
    processed = stats.frames_processed
    perceiver = processor.perceiver
    return {
        "fps": round(processed / watch.wall_s, 2) if watch.wall_s > 0 else 0.0,
        "latency_ms": stats.latency_ms,
        "rss_mb": peak_rss_mb(),
        "frames": processed,
        "warmup_frames": warmup,
        "keyframes": stats.keyframes,
        "cpu_ms_per_frame": round(1000.0 * watch.cpu_s / max(processed, 1), 1),
        "stage_ms_p50": {k: v.get("p50") for k, v in stats.stage_ms.items()},
        "encoder": {"name": cfg.encoder.name, "weights": perceiver.encoder_source,
                    "global_every": cfg.encoder.global_every, "global_scale": cfg.encoder.global_scale,
                    "global_stages": cfg.encoder.global_stages, "global_start_scale": cfg.encoder.global_start_scale,
                    "fusion_query_pool": cfg.encoder.fusion_query_pool,
                    "input": [cfg.encoder.input_width, cfg.encoder.input_height]},
        "device": str(perceiver.device), "precision": perceiver.precision, "torch_threads": perceiver.threads,
        "pipelined": cfg.runtime.pipelined,
        "adaptation": adapter_stats,
        "load_average": {"before": watch.load_before, "after": watch.load_after},
    }
