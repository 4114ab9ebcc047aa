"""Scoring a replay: per-frame records and the run's metrics, from what went in and what came out.

Inputs are the images the replay published (``publish_log``: header stamp and wall time, in bag order, so the k-th is
decoded frame ``k`` and gt frame ``k + 1``, EVAL_PROTOCOL.md). Outputs are the recorded ``Detection2DArray`` messages,
matched to inputs by header stamp (every output carries its input's header). A frame without an output was dropped.

Latency is the output's receipt wall time at the recorder minus the image's publication wall time at the replay (same
machine, same clock). Throughput is outputs per second between the first and the last output received; jitter is the
standard deviation of the intervals between outputs received.

Detection metrics call the very functions of ``dualstream eval detect`` (``perception.eval.detect.evaluate``: the
protocol's matching, AP50 and operating point, and MOTA/IDF1 through motmetrics with ids from the method's tracker)
on the same scored frames (``scored_frames``: gt frames 6 .. N of the N frames replayed), so the numbers agree with it
when the detections agree. Per frame, TP/FP/FN are at the run's operating threshold, with the protocol's matching
(score order, highest IoU among unmatched valid gt, IoU >= 0.5; an unmatched detection on an ignore region is
neither), so they sum to the run's counts.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from perception.config import DetectorConfig
from perception.detection.boxes import iou_matrix
from perception.eval.detect import MethodRun, evaluate, scored_frames
from perception.eval.detection_metrics import MATCH_IOU
from perception.eval.mot import FrameTruth
from perception.runtime.stats import percentiles


@dataclass
class Output:
    """One output frame: detections ``boxes`` (N, 4) x, y, w, h, ``scores``, track ``ids``, receipt wall ns."""

    boxes: np.ndarray
    scores: np.ndarray
    ids: np.ndarray
    received_ns: int


@dataclass
class Published:
    """One published image: header stamp and the wall time it went out."""

    stamp_ns: int
    wall_ns: int


def read_publish_log(path: str | Path, topic: str) -> list[Published]:
    """The images of ``topic`` in the order they were published."""
    out = []
    for line in Path(path).read_text().splitlines():
        if line.strip():
            row = json.loads(line)
            if row["topic"] == topic:
                out.append(Published(int(row["stamp_ns"]), int(row["wall_ns"])))
    return out


@dataclass
class ReplayScore:
    """The frames (``frames.jsonl`` rows) and ``metrics`` (``metrics.json``) of one replay."""

    frames: list[dict] = field(default_factory=list)
    metrics: dict = field(default_factory=dict)


def frame_matches(boxes: np.ndarray, scores: np.ndarray, truth: FrameTruth,
                  iou: float = MATCH_IOU) -> tuple[list[tuple[int, int, float]], int, int, int]:
    """``(matches [(detection index, gt id, IoU)], tp, fp, ignored)`` of one frame's detections, protocol matching."""
    valid = iou_matrix(boxes, truth.boxes) if len(boxes) and len(truth.boxes) else np.zeros((len(boxes), 0))
    ignore = iou_matrix(boxes, truth.ignore) if len(boxes) and len(truth.ignore) else np.zeros((len(boxes), 0))
    used = np.zeros(len(truth.boxes), bool)
    matches, fp, ignored = [], 0, 0
    for d in np.argsort(-scores, kind="stable"):
        row = np.where(used, -1.0, valid[d]) if valid.shape[1] else np.zeros(0)
        if row.size and row.max() >= iou:
            g = int(np.argmax(row))
            used[g] = True
            matches.append((int(d), int(truth.ids[g]), round(float(row[g]), 4)))
        elif ignore.shape[1] and ignore[d].max() >= iou:
            ignored += 1
        else:
            fp += 1
    return matches, len(matches), fp, ignored


def detection_metrics(outputs: dict[int, Output], n_frames: int, truth: dict[int, FrameTruth],
                      cfg: DetectorConfig) -> dict:
    """``dualstream eval detect``'s metrics of the outputs (keys: gt frame numbers) over its scored frames."""
    frames = scored_frames(truth, n_frames)
    empty = (np.zeros((0, 4)), np.zeros(0))
    run = MethodRun({f: (o.boxes, o.scores) for f, o in outputs.items()})
    for f in range(1, n_frames + 1):
        run.detections.setdefault(f, empty)  # a dropped frame detected nothing
    result = evaluate({cfg.method: run}, truth, frames, cfg)[cfg.method]
    keep = ("precision", "recall", "f1", "ap50", "mota", "idf1", "fp_per_frame", "threshold", "tp", "fp", "fn",
            "max_recall", "num_switches", "motp_iou")
    out = {k: result.get(k) for k in keep}
    out.update({"method": cfg.method, "frames_evaluated": len(frames), "scored_gt_frames": [frames[0], frames[-1]]
                if frames else [], "valid_boxes": int(sum(len(truth[f].boxes) for f in frames if f in truth))})
    return out


def score_replay(published: list[Published], outputs_by_stamp: dict[int, Output],
                 truth: dict[int, FrameTruth] | None, cfg: DetectorConfig) -> ReplayScore:
    """Frames and metrics of one replay; ``truth`` keyed by gt frame (None: no detection metrics)."""
    by_frame: dict[int, Output] = {}
    latencies, received = [], []
    for k, item in enumerate(published):
        out = outputs_by_stamp.get(item.stamp_ns)
        if out is not None:
            by_frame[k + 1] = out
            latencies.append((out.received_ns - item.wall_ns) / 1e6)
            received.append(out.received_ns)
    n = len(published)
    detection = detection_metrics(by_frame, n, truth, cfg) if truth is not None and n > 5 else None
    threshold = detection["threshold"] if detection and detection["threshold"] is not None else None
    first_scored = 6
    rows = []
    for k, item in enumerate(published):
        out = by_frame.get(k + 1)
        row: dict = {"frame": k, "gt_frame": k + 1, "stamp_ns": item.stamp_ns, "dropped": out is None,
                     "published_s": round((item.wall_ns - published[0].wall_ns) / 1e9, 4),
                     "latency_ms": None if out is None else round((out.received_ns - item.wall_ns) / 1e6, 3),
                     "detections": [] if out is None else [
                         [*(round(float(v), 2) for v in b), round(float(s), 4), int(i)]
                         for b, s, i in zip(out.boxes, out.scores, out.ids)]}
        if truth is not None:
            gt = truth.get(k + 1, FrameTruth())
            keep = (out.scores >= threshold) if (out is not None and threshold is not None) else None
            boxes = out.boxes[keep] if keep is not None else np.zeros((0, 4))
            scores = out.scores[keep] if keep is not None else np.zeros(0)
            index = np.flatnonzero(keep) if keep is not None else np.zeros(0, np.int64)
            matches, tp, fp, ignored = frame_matches(boxes, scores, gt)
            row.update({"scored": k + 1 >= first_scored, "gt": [[*(round(float(v), 2) for v in b), int(i)]
                                                                for b, i in zip(gt.boxes, gt.ids)],
                        "matches": [[int(index[d]), g, v] for d, g, v in matches],
                        "tp": tp, "fp": fp, "fn": int(len(gt.boxes) - tp), "ignored": ignored})
        rows.append(row)
    span_s = (max(received) - min(received)) / 1e9 if len(received) > 1 else 0.0
    gaps = np.diff(np.sort(np.asarray(received, np.float64))) / 1e6
    metrics = {
        "frames": n, "processed": len(by_frame), "drops": n - len(by_frame),
        "drop_fraction": round((n - len(by_frame)) / n, 4) if n else 0.0,
        "throughput_fps": round((len(received) - 1) / span_s, 3) if span_s > 0 else 0.0,
        "latency_ms": {k: (round(v, 2) if v is not None else None)
                       for k, v in {**percentiles(latencies), "mean": float(np.mean(latencies)) if latencies else None,
                                    "max": float(np.max(latencies)) if latencies else None}.items()},
        "jitter_ms": round(float(np.std(gaps)), 3) if gaps.size > 1 else None,
        "detection": detection,
        "first_publish_wall_ns": published[0].wall_ns if published else None,
    }
    return ReplayScore(rows, metrics)
