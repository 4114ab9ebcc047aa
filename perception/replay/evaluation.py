"""``dualstream eval bag`` in the core: choose topics and ground truth, run the graph, score, write the files.

One run = one ``EvalGraph`` (fresh processes) with a set of perception parameters: the main replay, optionally the
peak-rate trials on the same graph, then the outputs are read back from the recorded bag and scored
(``perception.replay.scoring``). ``run_folder`` gets ``metrics.json``, ``frames.jsonl``, the logs and the bag.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np

from perception.config import DetectorConfig
from perception.eval.mot import FrameTruth, load_mot_gt
from perception.io.atomic import atomic_write_text, write_json
from perception.io.bag import IMAGE_TYPES, RAW_IMAGE, message_to_rgb
from perception.io.bag_types import typestore
from perception.io.stats_files import read_json
from perception.replay.bag_access import BagError, BagInfo, read_messages
from perception.replay.eval_graph import EvalGraph, GraphSpec
from perception.replay.ground_truth import DETECTIONS, truth_from_cdr
from perception.replay.outputs import read_outputs
from perception.replay.peak_rate import MAX_DROP_FRACTION, find_peak_rate
from perception.replay.report_html import RunView, draw_example
from perception.replay.scoring import read_publish_log, score_replay

Log = Callable[[str], None]


def pick_topics(info: BagInfo, image_topic: str = "") -> tuple[str, str, str]:
    """``(image, camera_info, ground_truth)`` topics (the last two may be ""): ``image_topic`` when given (it must be
    an image topic of the bag), else the first raw image topic, else the first compressed one."""
    images = info.topics_of_type(*IMAGE_TYPES)
    if image_topic:
        info.require([image_topic])
        if image_topic not in images:
            raise BagError(f"{info.path}: topic {image_topic} is a {info.topics[image_topic].msgtype}, not an image; "
                           f"image topics: {', '.join(images) or 'none'}")
    elif not images:
        raise BagError(f"{info.path}: the bag has no image topic; it has: {info.listing()}")
    else:
        raw = [t for t in images if info.topics[t].msgtype == RAW_IMAGE]
        image_topic = (raw or images)[0]
    base = image_topic.rsplit("/", 2)[0] if image_topic.endswith("/compressed") else image_topic.rsplit("/", 1)[0]
    info_topic = next((t for t in (f"{base}/camera_info",) if t in info.topics), "")
    gt_topic = next((t for t in info.topics_of_type(DETECTIONS) if t.endswith("ground_truth")), "")
    return image_topic, info_topic, gt_topic


def truth_by_frame(gt_file: str, info: BagInfo, gt_topic: str, stamps: list[int]) -> dict[int, FrameTruth] | None:
    """Ground truth keyed by gt frame (``k + 1`` for the k-th image replayed): from ``gt_file`` (MOT) or from the
    bag's ground-truth topic matched by stamp; None when there is neither."""
    if gt_file:
        return load_mot_gt(gt_file)
    if not gt_topic:
        return None
    by_stamp = dict(truth_from_cdr(m.data) for m in read_messages(info, [gt_topic]))
    return {k + 1: by_stamp[s] for k, s in enumerate(stamps) if s in by_stamp}


@dataclass
class RunSettings:
    """One run: its ``label``, perception parameters, replay rate, frame cap, and peak-rate options."""

    label: str
    params: dict[str, object] = field(default_factory=dict)
    rate: float = 0.0
    max_frames: int = 0
    peak: bool = False
    peak_frames: int = 30
    fixed_rates: tuple[float, ...] = ()
    examples: int = 3


def image_rate_hz(info: BagInfo, topic: str) -> float:
    """The image topic's own rate (messages over the bag span), 10 Hz when it cannot be told."""
    count = info.topics[topic].count
    return (count - 1) / info.duration_s if count > 1 and info.duration_s > 0 else 10.0


def _examples(info: BagInfo, topic: str, frames: list[dict], threshold: float | None, count: int) -> list:
    processed = [f for f in frames if not f["dropped"] and f.get("scored", True)]
    if not processed or count <= 0:
        return []
    chosen = {processed[int(i * (len(processed) - 1) / max(count - 1, 1))]["stamp_ns"]: None for i in range(count)}
    rows = {f["stamp_ns"]: f for f in processed}
    out, store = [], typestore()
    for msg in read_messages(info, [topic]):
        msg_obj = store.deserialize_cdr(msg.data, msg.msgtype)
        stamp = int(msg_obj.header.stamp.sec) * 1_000_000_000 + int(msg_obj.header.stamp.nanosec)
        if stamp in chosen and chosen[stamp] is None:
            row = rows[stamp]
            chosen[stamp] = row
            caption = f"frame {row['frame']} (gt frame {row['gt_frame']}): " + (
                f"TP {row['tp']} FP {row['fp']} FN {row['fn']}" if "tp" in row else f"{len(row['detections'])} boxes")
            out.append((caption, draw_example(message_to_rgb(msg_obj, msg.msgtype), row, threshold)))
        if all(v is not None for v in chosen.values()):
            break
    return out


def _trial_score(graph_outputs, trial, topic: str, truth, cfg: DetectorConfig):
    dets, diags = graph_outputs.window(trial.started_wall_ns, trial.ended_wall_ns)
    published = read_publish_log(trial.publish_log, topic) if trial.publish_log.exists() else []
    return score_replay(published, dets, truth, cfg), diags, published


def run_once(info: BagInfo, topics: tuple[str, str, str], gt_file: str, settings: RunSettings, spec: GraphSpec,
             folder: Path, log: Log) -> tuple[RunView, dict | None]:
    """One run of the graph; writes ``folder/metrics.json`` and ``folder/frames.jsonl``; returns its view and the
    peak-rate results (None without ``settings.peak``)."""
    image, _, gt_topic = topics
    base_hz = image_rate_hz(info, image)
    trials: list[tuple[str, float, object]] = []
    with EvalGraph(info, spec, folder) as graph:
        log(f"[eval bag] {settings.label}: graph up; replaying {image} at "
            f"{'the rate the graph takes' if settings.rate == 0 else f'{settings.rate}x'}")
        main = graph.replay(settings.rate, settings.max_frames, "main")
        peak = None
        if settings.peak:
            def measure(rate_hz: float) -> float:
                trial = graph.replay(rate_hz / base_hz, settings.peak_frames, f"peak_{rate_hz:g}")
                stats = read_json(trial.stats)
                published = int(stats.get("published", {}).get(image, 0))
                drop = 1.0 - (stats.get("acked") or 0) / published if published else 1.0
                trials.append(("search", rate_hz, trial))
                log(f"[eval bag] peak search: {rate_hz:g} Hz -> {100 * drop:.1f}% dropped")
                return drop

            search = find_peak_rate(measure, max_hz=max(2.0, 8 * base_hz))
            for rate_hz in settings.fixed_rates:
                trials.append(("fixed", rate_hz, graph.replay(rate_hz / base_hz, settings.peak_frames,
                                                              f"fixed_{rate_hz:g}")))
            peak = {"peak_rate_hz": search.peak_rate_hz, "max_drop_fraction": MAX_DROP_FRACTION}
    outputs = read_outputs(folder / "outputs")
    cfg = DetectorConfig()
    stamps = [p.stamp_ns for p in read_publish_log(main.publish_log, image)] if main.publish_log.exists() else []
    truth = truth_by_frame(gt_file, info, gt_topic, stamps)
    score, diags, _ = _trial_score(outputs, main, image, truth, cfg)
    metrics = {**score.metrics, "run": settings.label, "rate": settings.rate, "perception_params": settings.params,
               "perception_stats": read_json(folder / "perception_stats.json"), "replay": read_json(main.stats)}
    if peak is not None:
        peak["trials"] = []
        for kind, rate_hz, trial in trials:
            s, _, pub = _trial_score(outputs, trial, image, None, cfg)
            peak["trials"].append({"kind": kind, "rate_hz": rate_hz, "published": s.metrics["frames"],
                                   "processed": s.metrics["processed"], "drop_fraction": s.metrics["drop_fraction"],
                                   "latency_ms": s.metrics["latency_ms"], "jitter_ms": s.metrics["jitter_ms"],
                                   "throughput_fps": s.metrics["throughput_fps"]})
        metrics["peak_rate"] = peak
    write_json(folder / "metrics.json", metrics)
    atomic_write_text(folder / "frames.jsonl", "".join(json.dumps(r) + "\n" for r in score.frames))
    det = metrics.get("detection") or {}
    view = RunView(settings.label, metrics, score.frames, diags,
                   _examples(info, image, score.frames, det.get("threshold"), settings.examples))
    return view, peak


def summary_line(m: dict) -> str:
    lat, det = m["latency_ms"], m.get("detection") or {}
    text = (f"{m['frames']} frames, {m['processed']} processed, {m['drops']} dropped, {m['throughput_fps']:.2f} fps, "
            f"latency p50 {lat['p50']} p95 {lat['p95']} p99 {lat['p99']} ms")
    if det:
        text += (f"; P {det['precision']:.3f} R {det['recall']:.3f} AP50 {det['ap50']:.3f} MOTA {det['mota']:.3f} "
                 f"IDF1 {det['idf1']:.3f} over {det['frames_evaluated']} scored frames")
    return text


def finite(values: list[float | None]) -> list[float]:
    return [float(v) for v in values if v is not None and np.isfinite(v)]
