"""Measure speed and the fast path's quality cost on a video: pipeline, ROS graph, ViT-S/14 baseline, quality.

One run on the same video (``--video``, frames decoded by the pipeline's own source) writes one JSON (``--json``):

- ``pipeline.{fps, latency_ms, rss_mb, ...}``: the default pipeline end to end in-process (decode, preprocess,
  encoder, detection, monitor), every frame (``perception.bench.pipeline_speed``);
- ``pipeline_adaptation``: the same with online adaptation on; ``adaptation_fps_ratio`` = its fps / ``pipeline.fps``;
- ``ros_graph.{fps, latency_ms, drops, drop_rate, ...}``: camera_node -> perception_node -> recorder_node as
  separate processes, the camera publishing at ``--rate`` Hz (``perception.bench.ros_graph``);
- ``baseline_vit_s14.fps``: DINOv2 ViT-S/14 on every frame at the encoder input with its short side 448
  (602x448 for 640x480), bf16 where the CPU supports it (``perception.bench.baseline``);
- ``ratio_vs_baseline`` = ``pipeline.fps / baseline_vit_s14.fps`` (same run, same frames, same load);
- ``quality.{fast, every_frame}.{davis_jf, pets_ap50}`` and ``quality.cost`` (``perception.bench.quality``) on
  ``--quality-max-frames`` frames;
- ``criteria``: the issue's thresholds, each true or false; ``machine`` with the load average and, before the graph
  part, ``fixed_work_ms`` (``--noise-probe`` seconds of a fixed single-threaded workload: how far this machine's own
  p99 sits above its p50 right now); the command.

``--only pipeline,baseline`` runs a subset. The config is the default (``--config``/``--set`` override it, as for
``dualstream run``); the outputs not in the measured chain (``runtime.publish_pca``, ``runtime.publish_debug``) are
off in both the pipeline and the graph unless ``--set`` turns them on.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import time
from pathlib import Path
from typing import Any

log = logging.getLogger("perception.commands.bench")

PARTS = ("pipeline", "adaptation", "ros_graph", "baseline", "quality")
DEFAULT_DATA = Path(__file__).resolve().parents[2].parent / "shared" / "data"
CRITERIA = {"pipeline_fps_min": 30.0, "ratio_vs_baseline_min": 10.0, "ros_graph_fps_min": 25.0,
            "ros_graph_p99_ms_max": 100.0, "ros_graph_drop_rate_max": 0.05, "quality_cost_max": 0.02,
            "adaptation_fps_ratio_min": 0.8}
OFF_BY_DEFAULT = ("runtime.publish_pca=false", "runtime.publish_debug=false")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--video", required=True, metavar="V", help="video file (e.g. ../shared/data/videos/vtest.avi)")
    parser.add_argument("--json", required=True, metavar="OUT", help="write the results here (JSON)")
    parser.add_argument("--config", default=None, metavar="CFG", help="YAML config file (defaults otherwise)")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", dest="overrides",
                        help="config override, e.g. encoder.global_every=8 (repeatable; also sent to perception_node)")
    parser.add_argument("--only", default=",".join(PARTS), metavar="PARTS",
                        help=f"comma-separated subset of {','.join(PARTS)} (default: all)")
    parser.add_argument("--max-frames", type=int, default=300, metavar="N",
                        help="frames through the in-process pipeline (default 300; 0: the whole video)")
    parser.add_argument("--adapt-frames", type=int, default=150, metavar="N",
                        help="frames for the adaptation on/off comparison (default 150)")
    parser.add_argument("--warmup", type=int, default=8, metavar="N", help="untimed frames before a pipeline run")
    parser.add_argument("--baseline-frames", type=int, default=10, metavar="N",
                        help="frames timed for the ViT-S/14 baseline (default 10; about 0.4 s each on 2 cores)")
    parser.add_argument("--ros-frames", type=int, default=300, metavar="N",
                        help="frames the camera publishes in the graph run (default 300; 0: the whole video)")
    parser.add_argument("--ros-qos", default="reliable", choices=("reliable", "best_effort"),
                        help="reliability of the image topic in the graph, keep-last depth 1 (default reliable; "
                             "best effort, the nodes' sensor-data default, delivers as well with the graph's DDS "
                             "profile)")
    parser.add_argument("--rate", type=float, default=30.0, metavar="HZ", help="camera rate in the graph (default 30)")
    parser.add_argument("--quality-max-frames", type=int, default=20, metavar="N",
                        help="frames per sequence for the quality comparison (default 20; DAVIS propagation "
                             "costs about 2 s a frame here)")
    parser.add_argument("--data", default=str(DEFAULT_DATA), metavar="DIR",
                        help="shared data folder (mot15/PETS09-S2L1/gt/gt.txt, davis2016); missing parts are skipped")
    parser.add_argument("--pets-gt", default="", metavar="GT",
                        help="MOT ground truth of --video for pets_ap50 (default: <data>/mot15/PETS09-S2L1/gt/gt.txt "
                             "when --video is vtest.avi)")
    parser.add_argument("--davis-seqs", default="car-roundabout,parkour", metavar="SEQS",
                        help="DAVIS-2016 sequences for davis_jf (default car-roundabout,parkour)")
    parser.add_argument("--noise-probe", type=float, default=10.0, metavar="S",
                        help="seconds of a fixed single-threaded workload timed just before the graph part "
                             "(machine.fixed_work_ms: how steady the machine is; 0: skip)")
    parser.add_argument("--out", default="runs/bench", metavar="DIR", help="logs of the graph run (default runs/bench)")
    parser.add_argument("--omp-wait-policy", default="PASSIVE", choices=("PASSIVE", "ACTIVE", "default"),
                        help="OMP_WAIT_POLICY of the graph's processes (default PASSIVE: spinning OpenMP threads "
                             "cost up to 7x on a shared 2-core machine; 'default' leaves it unset). OpenMP reads it "
                             "when torch loads, so for the in-process parts set it in the environment of the command")


def _parts(text: str) -> list[str]:
    from perception.config import ConfigError  # noqa: PLC0415

    parts = [p.strip() for p in text.split(",") if p.strip()]
    unknown = [p for p in parts if p not in PARTS]
    if unknown or not parts:
        raise ConfigError(f"--only {text!r}: unknown part(s) {unknown}; expected a subset of {', '.join(PARTS)}")
    return parts


def _config(args: argparse.Namespace, extra: tuple[str, ...] = ()) -> Any:
    from perception.config import load_config  # noqa: PLC0415
    from perception.runtime.run_config import RunConfig  # noqa: PLC0415

    overrides = [*OFF_BY_DEFAULT, *args.overrides, f"source.uri={args.video}", *extra]
    return load_config(args.config, overrides, cls=RunConfig)


def _node_params(args: argparse.Namespace) -> dict[str, str]:
    params = {}
    for item in [*OFF_BY_DEFAULT, *args.overrides]:
        key, _, value = item.partition("=")
        if key.split(".")[0] in ("source", "adaptation") and key != "adaptation.enabled":
            continue
        params[key.strip()] = value.strip()
    return params


def _quality_data(args: argparse.Namespace) -> tuple[tuple[str, str] | None, str | None]:
    data = Path(args.data)
    gt = Path(args.pets_gt) if args.pets_gt else None
    if gt is None and Path(args.video).name == "vtest.avi":
        gt = data / "mot15" / "PETS09-S2L1" / "gt" / "gt.txt"
    pets = (args.video, str(gt)) if gt is not None and gt.is_file() else None
    davis = data / "davis2016"
    return pets, (str(davis) if davis.is_dir() else None)


def criteria(result: dict) -> dict:
    """The issue's thresholds against ``result``: ``{name: true | false | None (not measured)}``."""
    def get(*path: str) -> Any:
        node: Any = result
        for key in path:
            node = node.get(key) if isinstance(node, dict) else None
        return node

    def check(value: Any, ok) -> bool | None:
        return None if value is None else bool(ok(value))

    c = CRITERIA
    costs = [get("quality", "cost", m) for m in ("davis_jf", "pets_ap50")]
    measured = [v for v in costs if v is not None]
    return {
        "pipeline_fps_at_least_30": check(get("pipeline", "fps"), lambda v: v >= c["pipeline_fps_min"]),
        "pipeline_at_least_10x_baseline": check(result.get("ratio_vs_baseline"),
                                                lambda v: v >= c["ratio_vs_baseline_min"]),
        "ros_graph_fps_at_least_25": check(get("ros_graph", "fps"), lambda v: v >= c["ros_graph_fps_min"]),
        "ros_graph_p99_under_100ms": check(get("ros_graph", "latency_ms", "p99"),
                                           lambda v: v < c["ros_graph_p99_ms_max"]),
        "ros_graph_drops_under_5_percent": check(get("ros_graph", "drop_rate"),
                                                 lambda v: v < c["ros_graph_drop_rate_max"]),
        "quality_cost_at_most_0.02": None if not measured else all(v <= c["quality_cost_max"] for v in measured),
        "adaptation_keeps_80_percent_fps": check(result.get("adaptation_fps_ratio"),
                                                 lambda v: v >= c["adaptation_fps_ratio_min"]),
    }


def _print(result: dict, path: Path) -> None:
    def fmt(v: Any, spec: str = ".1f") -> str:
        return "n/a" if v is None else format(v, spec)

    p, g, b = result.get("pipeline") or {}, result.get("ros_graph") or {}, result.get("baseline_vit_s14") or {}
    lat, glat = p.get("latency_ms") or {}, g.get("latency_ms") or {}
    print(f"dualstream bench: {result['video']} (load {result['machine']['load_average']})")
    print(f"  pipeline   {fmt(p.get('fps'))} fps, latency p50 {fmt(lat.get('p50'))} p95 {fmt(lat.get('p95'))} "
          f"p99 {fmt(lat.get('p99'))} ms, peak RSS {fmt(p.get('rss_mb'))} MB, {fmt(p.get('cpu_ms_per_frame'))} "
          f"CPU ms/frame")
    print(f"  ros_graph  {fmt(g.get('fps'))} fps delivered, latency p50 {fmt(glat.get('p50'))} "
          f"p99 {fmt(glat.get('p99'))} ms, drops {g.get('drops', 'n/a')} ({fmt(g.get('drop_rate'), '.1%')})")
    print(f"  baseline   ViT-S/14 {fmt(b.get('fps'), '.2f')} fps at {b.get('input')}; ratio "
          f"{fmt(result.get('ratio_vs_baseline'), '.1f')}x; adaptation on/off fps "
          f"{fmt(result.get('adaptation_fps_ratio'), '.2f')}")
    q = result.get("quality") or {}
    if q:
        print(f"  quality    fast {q.get('fast')} every_frame {q.get('every_frame')} cost {q.get('cost')} "
              f"({q.get('max_frames')} frames)")
    print(f"  criteria   {result['criteria']}")
    print(f"  written    {path}")


def _command_line() -> str | None:
    """How this run was started (with ``OMP_WAIT_POLICY`` when set), or None when not from the command line."""
    if sys.argv[1:2] != ["bench"]:
        return None
    policy = os.environ.get("OMP_WAIT_POLICY")
    return " ".join([*([f"OMP_WAIT_POLICY={policy}"] if policy else []), "dualstream", *sys.argv[1:]])


def run(args: argparse.Namespace) -> int:
    from perception.bench.measure import machine_info  # noqa: PLC0415
    from perception.config import ConfigError, config_to_dict  # noqa: PLC0415
    from perception.io.atomic import write_json  # noqa: PLC0415

    parts = _parts(args.only)
    if not Path(args.video).is_file():
        raise FileNotFoundError(f"bench: --video '{args.video}' is not a file")
    cfg = _config(args)
    started = time.time()
    machine = {**machine_info(), "omp_wait_policy": os.environ.get("OMP_WAIT_POLICY")}
    result: dict[str, Any] = {"video": args.video, "command": _command_line(), "machine": machine,
                              "config": config_to_dict(cfg), "parts": parts}
    out_json = Path(args.json)

    def save() -> None:
        result["criteria"] = criteria(result)
        result["elapsed_s"] = round(time.time() - started, 1)
        result["machine"]["load_average_end"] = machine_info()["load_average"]
        out_json.parent.mkdir(parents=True, exist_ok=True)
        write_json(out_json, result)

    if "pipeline" in parts:
        from perception.bench.pipeline_speed import measure_pipeline  # noqa: PLC0415

        log.info("bench: pipeline, %s frames", args.max_frames or "all")
        result["pipeline"] = measure_pipeline(cfg, args.max_frames, args.warmup)
        save()
    if "baseline" in parts:
        from perception.bench.baseline import measure_vit_baseline  # noqa: PLC0415
        from perception.bench.measure import read_rgb_frames  # noqa: PLC0415
        from perception.runtime.preprocess import encoder_size  # noqa: PLC0415

        frames = list(read_rgb_frames(args.video, args.baseline_frames + 2))
        size = encoder_size(frames[0].shape[1], frames[0].shape[0], cfg.encoder.input_width,
                            cfg.encoder.input_height)
        log.info("bench: ViT-S/14 baseline, %d frames", args.baseline_frames)
        result["baseline_vit_s14"] = measure_vit_baseline(frames, size, args.baseline_frames,
                                                          device=cfg.runtime.device, precision=cfg.runtime.precision)
        save()
    if result.get("pipeline") and result.get("baseline_vit_s14"):
        result["ratio_vs_baseline"] = round(result["pipeline"]["fps"] / result["baseline_vit_s14"]["fps"], 2)
    if "adaptation" in parts:
        from perception.bench.pipeline_speed import measure_pipeline  # noqa: PLC0415

        log.info("bench: adaptation off/on, %d frames each", args.adapt_frames)
        off = measure_pipeline(cfg, args.adapt_frames, args.warmup)
        on = measure_pipeline(_config(args, ("adaptation.enabled=true",)), args.adapt_frames, args.warmup,
                              adaptation=True)
        result["pipeline_adaptation"] = {"off": off, "on": on}
        result["adaptation_fps_ratio"] = round(on["fps"] / off["fps"], 3) if off["fps"] else None
        save()
    if "ros_graph" in parts and args.noise_probe > 0:
        from perception.bench.measure import fixed_work_probe  # noqa: PLC0415

        log.info("bench: fixed-work probe, %.0f s", args.noise_probe)
        result["machine"]["fixed_work_ms"] = fixed_work_probe(args.noise_probe)
        save()
    if "ros_graph" in parts:
        from perception.bench.ros_graph import measure_ros_graph  # noqa: PLC0415

        env = {} if args.omp_wait_policy == "default" else {"OMP_WAIT_POLICY": args.omp_wait_policy}
        log.info("bench: ROS graph at %.0f Hz, %s frames", args.rate, args.ros_frames or "all")
        result["ros_graph"] = measure_ros_graph(args.video, Path(args.out) / "ros_graph", args.rate, args.ros_frames,
                                                _node_params(args), env, reliability=args.ros_qos)
        save()
    if "quality" in parts:
        from perception.bench.quality import measure_quality  # noqa: PLC0415

        if args.quality_max_frames < 7:
            raise ConfigError(f"--quality-max-frames {args.quality_max_frames}: expected at least 7 (PETS scores "
                              "from its 6th frame)")
        pets, davis = _quality_data(args)
        seqs = [s.strip() for s in args.davis_seqs.split(",") if s.strip()]
        result["quality"] = measure_quality(cfg, args.quality_max_frames, pets, davis, seqs,
                                            progress=lambda line: log.info("bench: %s", line))
    save()
    _print(result, out_json)
    return 0
