"""Replay a bag through the real node graph (use_sim_time) and score it: metrics.json, frames.jsonl, report.html.

replay_node -> perception_node -> recorder_node as separate processes (``perception.replay.eval_graph``). Detection
metrics (with ground truth from ``--gt`` or the bag's ``ground_truth`` topic) use the functions of ``dualstream eval
detect`` on the same scored frames. ``--ab adaptation`` runs the graph twice, adaptation off and on, side by side.
``--peak-rate`` finds the highest input rate sustained with under 5 percent dropped frames, then measures latency
and jitter at ``--fixed-rates``.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import time
from pathlib import Path

from perception.io.atomic import atomic_write_text, write_json
from perception.replay.bag_access import inspect_bag
from perception.replay.eval_graph import GraphError, GraphSpec, default_echo
from perception.replay.evaluation import RunSettings, pick_topics, run_once, summary_line
from perception.replay.report_html import render

# The configuration under which the graph's detections are those of `dualstream eval detect --methods discovery
# --encoder-scale 1.0`: the encoder sees the frame at its own size, in fp32.
EVAL_DETECT_PARAMS = {"encoder.input_width": 0, "encoder.input_height": 0, "runtime.precision": "fp32"}
AB = {"adaptation": (("adaptation_off", {"adaptation.enabled": False}), ("adaptation_on", {"adaptation.enabled": True}))}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--bag", required=True, help="rosbag2 folder (mcap or sqlite3) or a bare .mcap")
    parser.add_argument("--gt", default="", help="MOTChallenge gt.txt (default: the bag's */ground_truth topic)")
    parser.add_argument("--report", required=True, help="output folder (replaced)")
    parser.add_argument("--config", default="", help="perception_node parameters file (ros__parameters YAML)")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="a perception_node parameter, e.g. detector.score_threshold=0.4 (repeatable)")
    parser.add_argument("--topic", default="", help="image topic (default: the first raw image topic)")
    parser.add_argument("--rate", type=float, default=0.0,
                        help="replay rate: 0 as fast as the graph takes, every frame processed (default); 1 the "
                             "bag's timing (a slow graph drops frames), 2 twice as fast, ...")
    parser.add_argument("--max-frames", type=int, default=0, help="only the first N images (0: all)")
    parser.add_argument("--match-eval-detect", action="store_true",
                        help="run the encoder as `dualstream eval detect --encoder-scale 1.0` does (native size, "
                             "fp32), so the detections are the same as that benchmark's `discovery`")
    parser.add_argument("--ab", choices=sorted(AB), default="", help="run twice, off and on, side by side")
    parser.add_argument("--peak-rate", action="store_true", help="also find the peak input rate (< 5%% drops)")
    parser.add_argument("--peak-frames", type=int, default=30, help="images per peak-rate trial (30)")
    parser.add_argument("--fixed-rates", default="5,10", help="rates (Hz) measured after the peak search (5,10)")
    parser.add_argument("--examples", type=int, default=3, help="example frames in the report (3)")
    parser.add_argument("--domain-id", type=int, default=None, help="ROS_DOMAIN_ID for the graph")
    parser.add_argument("--quiet", action="store_true", help="do not echo the nodes' output")


def _params(args: argparse.Namespace) -> dict[str, object]:
    params: dict[str, object] = dict(EVAL_DETECT_PARAMS) if args.match_eval_detect else {}
    for item in args.set:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise ValueError(f"--set '{item}': expected KEY=VALUE")
        params[key.strip()] = value
    return params


def run(args: argparse.Namespace) -> int:
    started = time.time()
    log = lambda line: print(line, file=sys.stderr, flush=True)  # noqa: E731
    info = inspect_bag(args.bag)  # BagError: exit 2 with one line
    topics = pick_topics(info, args.topic)
    try:
        params = _params(args)
        fixed = tuple(float(r) for r in args.fixed_rates.split(",") if r.strip())
    except ValueError as exc:
        print(f"eval bag: {exc}", file=sys.stderr)
        return 2
    if args.gt and not Path(args.gt).is_file():
        raise FileNotFoundError(f"ground truth {args.gt} does not exist")
    notes = [f"bag {info.path} ({info.storage}): {info.listing()}",
             f"images from {topics[0]}; ground truth from {args.gt or topics[2] or 'nowhere (no detection metrics)'}"]
    if info.damaged:
        notes.append(f"the bag is damaged: {info.damaged}; evaluated on what could be read")
        log(f"[eval bag] warning: {notes[-1]}")
    report = Path(args.report)
    if report.exists():
        shutil.rmtree(report)
    report.mkdir(parents=True)
    variants = AB[args.ab] if args.ab else (("run", {}),)
    spec_echo = default_echo(args.quiet)
    views, peak = [], None
    for index, (label, extra) in enumerate(variants):
        settings = RunSettings(label, {**params, **extra}, args.rate, args.max_frames, args.peak_rate and index == 0,
                               args.peak_frames, fixed, args.examples)
        spec = GraphSpec(topics[0], topics[1], settings.params, args.config, args.rate, args.max_frames,
                         args.domain_id, echo=spec_echo)
        try:
            view, run_peak = run_once(info, topics, args.gt, settings, spec, report / label, log)
        except GraphError as exc:
            print(f"eval bag: {label}: {exc}", file=sys.stderr)
            return 1
        views.append(view)
        peak = peak or run_peak
        log(f"[eval bag] {label}: {summary_line(view.metrics)}")
    first = views[0].metrics
    metrics = {**first, "bag": str(info.path), "bag_damaged": info.damaged, "image_topic": topics[0],
               "gt": args.gt or topics[2], "arguments": {k: v for k, v in vars(args).items() if not callable(v)},
               "elapsed_s": round(time.time() - started, 1)}
    if len(views) > 1:
        metrics["ab"] = {v.label: v.metrics for v in views}
    write_json(report / "metrics.json", metrics)
    shutil.copyfile(report / views[0].label / "frames.jsonl", report / "frames.jsonl")
    notes.append(f"replay rate {args.rate or 'as fast as the graph takes'}; perception parameters "
                 f"{params or 'the shipped defaults'}{'; config ' + args.config if args.config else ''}")
    atomic_write_text(report / "report.html", render(f"dualstream eval bag: {info.path.name}", views, notes, peak))
    log(f"[eval bag] wrote {report}/metrics.json, frames.jsonl and report.html")
    return 0
