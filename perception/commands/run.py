"""Run a frame source through the perception pipeline without ROS and write the results to a folder.

Writes ``<out>/config.yaml`` (the resolved config), ``<out>/detections.jsonl`` (one line per processed frame),
``<out>/overlay.mp4`` (with ``--overlay``) and ``<out>/result.json`` (the run's counts, rate and latency). With
``adaptation.enabled: true`` (the ``adaptation:`` group of ``perception.runtime.run_config.RunConfig``, the node's
``adaptation.*`` parameters) the encoder adapts online while it serves the frames, its state is saved to
``adaptation.state_dir`` when set, and ``result.json`` has the adapter's final statistics under ``adaptation``.
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path
from typing import Any

log = logging.getLogger("perception.commands.run")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--source", default=None, metavar="URI",
                        help="video file, camera:N, rtsp:// or http:// URL, image folder, rosbag2, or 'synthetic' "
                             "(default: source.uri of the config)")
    parser.add_argument("--config", default=None, metavar="CFG", help="YAML config file (defaults otherwise)")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", dest="overrides",
                        help="config override, e.g. encoder.name=dualstream_tiny (repeatable)")
    parser.add_argument("--out", default="runs/run", metavar="DIR", help="output folder (default runs/run)")
    parser.add_argument("--max-frames", type=int, default=None, metavar="N", help="stop after reading N frames")
    parser.add_argument("--duration", type=float, default=None, metavar="S", help="stop after S seconds")
    parser.add_argument("--realtime", action="store_true",
                        help="pace the source at its own rate (source.rate_hz overrides) and drop the frames the "
                             "model cannot keep up with; default: every frame, as fast as possible")
    parser.add_argument("--overlay", action="store_true", help="also write overlay.mp4 (boxes and track ids)")
    parser.add_argument("--no-progress", action="store_true", help="no progress line on stderr")


def resolve_config(args: argparse.Namespace) -> Any:
    """Defaults <- ``--config`` <- ``--set`` <- ``--source``."""
    from perception.config import load_config  # noqa: PLC0415
    from perception.runtime.run_config import RunConfig  # noqa: PLC0415

    overrides = list(args.overrides)
    if args.source is not None:
        overrides.append(f"source.uri={args.source}")
    return load_config(args.config, overrides, cls=RunConfig)


def _check_limits(args: argparse.Namespace) -> None:
    from perception.config import ConfigError  # noqa: PLC0415

    if args.max_frames is not None and args.max_frames < 1:
        raise ConfigError(f"--max-frames {args.max_frames}: expected a positive number of frames")
    if args.duration is not None and not args.duration > 0:
        raise ConfigError(f"--duration {args.duration}: expected a positive number of seconds")


class _ProgressLine:
    """One tqdm line on stderr: frames read (the bar), processed, dropped, last frame's processing time."""

    def __init__(self, total: int | None, enabled: bool) -> None:
        from tqdm import tqdm  # noqa: PLC0415

        self.bar = tqdm(total=total, unit="frame", file=sys.stderr, disable=not enabled, dynamic_ncols=True,
                        leave=True)

    def __call__(self, progress) -> None:  # perception.runtime.pipeline.Progress
        self.bar.set_postfix(processed=progress.processed, dropped=progress.dropped,
                             ms=f"{progress.last.timings_ms.get('total', 0.0):.0f}", refresh=False)
        self.bar.update(progress.read - self.bar.n)  # frames read so far (processed or dropped)

    def finish(self, frames_read: int) -> None:
        self.bar.update(frames_read - self.bar.n)

    def close(self) -> None:
        self.bar.close()


def _source_length(source: Any) -> int | None:
    for name in ("num_frames", "frame_count"):
        value = getattr(source, name, None)
        if isinstance(value, int) and value > 0:
            return value
    return None


def _print_summary(result: dict, out: Path) -> None:
    lat = result["latency_ms"]
    fmt = lambda v: "n/a" if v is None else f"{v:.1f}"  # noqa: E731
    stages = "  ".join(f"{k} {fmt(v['p50'])}" for k, v in result["stage_ms"].items() if k != "total")
    print(f"dualstream run: {result['source']} ({result['stop_reason']})")
    print(f"  frames    {result['frames_read']} read, {result['frames_processed']} processed, "
          f"{result['frames_dropped']} dropped{' (real time, latest only)' if result['realtime'] else ''}")
    print(f"  rate      {result['fps']:.1f} fps on {result['device']} ({result['precision']}), "
          f"encoder {result['encoder']} ({result['encoder_weights']})")
    print(f"  latency   p50 {fmt(lat['p50'])}  p95 {fmt(lat['p95'])}  p99 {fmt(lat['p99'])} ms (frame read -> result)")
    print(f"  stages    {stages} (median ms)")
    print(f"  outputs   {out}/ ({', '.join(result['outputs'])})")


def run(args: argparse.Namespace) -> int:
    from perception.config import save_config  # noqa: PLC0415
    from perception.io.atomic import write_json  # noqa: PLC0415
    from perception.io.factory import open_source  # noqa: PLC0415
    from perception.runtime.perceiver import Perceiver  # noqa: PLC0415
    from perception.runtime.pipeline import Pipeline  # noqa: PLC0415
    from perception.runtime.sinks import JsonLinesSink, OverlayVideoSink  # noqa: PLC0415

    cfg = resolve_config(args)
    _check_limits(args)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    save_config(cfg, out / "config.yaml")
    source = open_source(cfg.source)  # first: a bad source fails before the model loads
    adapter = None
    try:
        perceiver = Perceiver(cfg)
        if cfg.adaptation.enabled:
            from perception.adaptation import attach_online_adapter  # noqa: PLC0415

            adapter, note = attach_online_adapter(perceiver, cfg.adaptation)
            log.info("online adaptation on (%s params, lr %g): %s", cfg.adaptation.params, cfg.adaptation.lr, note)
    except BaseException:
        source.close()
        raise
    sinks: list = []
    try:
        sinks.append(JsonLinesSink(out / "detections.jsonl"))
        if args.overlay:
            fps = cfg.source.rate_hz or getattr(source, "fps", None) or 30.0
            sinks.append(OverlayVideoSink(out / "overlay.mp4", fps=fps))
    except BaseException:
        for sink in sinks:
            sink.close()
        source.close()
        raise
    outputs = ["config.yaml", "detections.jsonl", *(["overlay.mp4"] if args.overlay else []), "result.json"]
    size = getattr(source, "size", None)
    if cfg.runtime.warmup_frames > 0 and size and tuple(size) != (cfg.encoder.input_width, cfg.encoder.input_height):
        log.info("warm-up at the source size %dx%d took %.1f s", size[0], size[1],
                 perceiver.warmup(size[0], size[1], cfg.runtime.warmup_frames))
    length = _source_length(source)
    total = min(v for v in (args.max_frames, length) if v) if (args.max_frames or length) else None
    progress = _ProgressLine(total, enabled=not args.no_progress)
    pipeline = Pipeline(source, perceiver, sinks, realtime=args.realtime, rate_hz=cfg.source.rate_hz or None,
                        progress=progress, pipelined=cfg.runtime.pipelined)
    try:
        pipeline.run(max_frames=args.max_frames, duration_s=args.duration)  # closes the source and the sinks
    finally:
        if adapter is not None:
            adapter.stop(save=True)
        if pipeline.stats is not None:
            progress.finish(pipeline.stats.frames_read)
        progress.close()
        if pipeline.stats is not None:  # also after an error: the counts up to it, and the error
            result = pipeline.stats.to_dict()
            result.update(source=cfg.source.uri, device=str(perceiver.device), precision=perceiver.precision,
                          encoder=cfg.encoder.name, encoder_weights=perceiver.encoder_source, outputs=outputs,
                          adaptation=adapter.stats() if adapter is not None else None)
            write_json(out / "result.json", result)
    _print_summary(result, out)
    return 130 if result["stop_reason"] == "interrupted" else 0
