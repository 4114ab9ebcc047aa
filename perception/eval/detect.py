"""The detection benchmark runner (EVAL_PROTOCOL.md, "Detection on MOT15 sequences").

One pass over the video runs every method on every frame (decoded frame ``i`` is gt frame ``i + 1``):
``fewshot`` (a head fitted on the first ``fewshot_frames`` frames' labels, or a given head), ``discovery``
(class-agnostic, :class:`~perception.detection.detector.DiscoveryDetector`), ``hog`` and ``mog2`` (the protocol's
baselines, :mod:`perception.eval.baselines`). The encoder runs once per frame in streaming mode and its dense map
is shared by ``fewshot`` and ``discovery``. Then each method is scored over the scored frames
(:mod:`perception.eval.detection_metrics`, :mod:`perception.eval.mot`); ``hog`` first, since every method's
``fp_per_frame_at_hog_recall`` uses its recall. Tracking metrics use the detections at or above each method's
operating threshold with ids from its tracker: the greedy IoU tracker for the baselines, the project's
:class:`~perception.detection.tracker.IoUTracker` for ours.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import cv2
import numpy as np
import torch

from perception.config import DetectorConfig
from perception.detection.tracker import IoUTracker
from perception.detection.types import Detections
from perception.eval.baselines import (GreedyIoUTracker, HogParams, Mog2Detector, hog_detections_cached,
                                       hog_scale_for)
from perception.eval.detection_metrics import (detection_summary, fp_per_frame_at_recall, match_detections,
                                               pr_curve)
from perception.io.opencv_video import read_video  # noqa: F401 (re-exported: eval detect's reader)
from perception.eval.mot import FrameTruth, load_mot_gt, tracking_metrics

METHODS = ("fewshot", "discovery", "hog", "mog2")
UNSCORED_FRAMES = 5  # gt frames 1..5 are never scored (their labels may train a few-shot head)
FrameDets = tuple[np.ndarray, np.ndarray]
Log = Callable[[str], None]


def video_length(path: str | Path) -> int:
    capture = cv2.VideoCapture(str(path))
    n = int(capture.get(cv2.CAP_PROP_FRAME_COUNT))
    capture.release()
    return n


class StreamingFeatures:
    """The encoder's dense map ``(C, h, w)`` of each frame (at ``scale`` of the frame's size, each side rounded to
    a multiple of 8, so the grid has ``h = H * scale / 8`` rows), with the streaming state carried along."""

    def __init__(self, model: torch.nn.Module, scale: float = 1.0, bf16: bool = False) -> None:
        self.model, self.scale, self.bf16, self.state = model.eval(), scale, bf16, None

    def reset(self) -> None:
        self.state = None

    def __call__(self, image: np.ndarray) -> torch.Tensor:
        if self.scale != 1.0:
            h, w = image.shape[:2]
            size = (max(8, int(round(w * self.scale / 8)) * 8), max(8, int(round(h * self.scale / 8)) * 8))
            image = cv2.resize(image, size, interpolation=cv2.INTER_AREA)
        x = torch.from_numpy(image).permute(2, 0, 1)[None].float().div_(255.0).contiguous()
        with torch.inference_mode(), torch.autocast("cpu", dtype=torch.bfloat16, enabled=self.bf16):
            out, self.state = self.model.encode(x, self.state)
        return out.dense[0].float()


@dataclass
class MethodRun:
    """Per-frame detections of one method (gt frame numbering) and the seconds it spent."""

    detections: dict[int, FrameDets] = field(default_factory=dict)
    seconds: float = 0.0


def _as_frame_dets(dets: Detections) -> FrameDets:
    return np.asarray(dets.boxes, np.float64).reshape(-1, 4), np.asarray(dets.scores, np.float64).reshape(-1)


def run_methods(video: str | Path, methods: list[str], n_frames: int, features: StreamingFeatures | None,
                detectors: dict[str, object], hog_params: HogParams, cache_dir: str | Path,
                log: Log = print) -> dict[str, MethodRun]:
    """Run every method over the first ``n_frames`` frames; ``detectors`` holds ``fewshot`` / ``discovery``."""
    runs = {m: MethodRun() for m in methods}
    mog2 = Mog2Detector() if "mog2" in methods else None
    encoder_seconds = 0.0
    started = time.time()
    for index, image in enumerate(read_video(video, n_frames)):
        frame = index + 1
        dense = None
        if features is not None:
            t = time.perf_counter()
            dense = features(image)
            encoder_seconds += time.perf_counter() - t
        for name in ("fewshot", "discovery"):
            if name in runs:
                t = time.perf_counter()
                runs[name].detections[frame] = _as_frame_dets(detectors[name].detect(image, dense))
                runs[name].seconds += time.perf_counter() - t
        if mog2 is not None:
            t = time.perf_counter()
            runs["mog2"].detections[frame] = mog2(image)
            runs["mog2"].seconds += time.perf_counter() - t
        if frame % 50 == 0 or frame == n_frames:
            log(f"[eval detect] frame {frame}/{n_frames} ({time.time() - started:.0f} s)")
    if "hog" in runs:
        t = time.perf_counter()
        hog = hog_detections_cached(video, read_video(video, n_frames), n_frames, hog_params, cache_dir,
                                    progress=lambda i: log(f"[eval detect] hog frame {i + 1}/{n_frames}")
                                    if (i + 1) % 50 == 0 else None)
        runs["hog"].detections = {i + 1: d for i, d in enumerate(hog)}
        runs["hog"].seconds = time.perf_counter() - t
    if features is not None:
        runs["encoder"] = MethodRun(seconds=encoder_seconds)
    return runs


def track(detections: dict[int, FrameDets], threshold: float, method: str, cfg: DetectorConfig) -> dict:
    """``{frame: (boxes, ids)}`` of the detections at or above ``threshold``, ids from the method's tracker."""
    greedy = method in ("hog", "mog2")
    tracker = GreedyIoUTracker() if greedy else IoUTracker(cfg.track_iou, cfg.track_max_misses, 0.0)
    out = {}
    for frame in sorted(detections):
        boxes, scores = detections[frame]
        keep = scores >= threshold
        boxes, scores = boxes[keep], scores[keep]
        if greedy:
            ids = tracker.update(boxes, scores)
        else:
            dets = Detections(boxes.astype(np.float32), scores.astype(np.float32), np.full(len(scores), -1, np.int64),
                              ["object"] * len(scores))
            ids = tracker.update(dets).track_ids
        out[frame] = (boxes, ids)
    return out


def evaluate(runs: dict[str, MethodRun], truth: dict[int, FrameTruth], frames: list[int], cfg: DetectorConfig,
             remove_ignored: bool = True) -> dict[str, dict]:
    """Detection and tracking metrics per method (``hog`` first when present: its recall is the reference)."""
    order = sorted((m for m in runs if m != "encoder"), key=lambda m: m != "hog")
    results: dict[str, dict] = {}
    hog_recall = None
    for name in order:
        scores, outcome, n_valid = match_detections(runs[name].detections, truth, frames)
        curve = pr_curve(scores, outcome, n_valid)
        summary = detection_summary(curve, len(frames))
        if name == "hog":
            hog_recall = summary["recall"]
        summary["fp_per_frame_at_hog_recall"] = (None if hog_recall is None
                                                 else fp_per_frame_at_recall(curve, hog_recall, len(frames)))
        threshold = summary["threshold"] if summary["threshold"] is not None else np.inf
        tracks = track(runs[name].detections, threshold, name, cfg)
        summary.update(tracking_metrics(truth, tracks, frames, remove_ignored))
        summary["seconds"] = round(runs[name].seconds, 2)
        summary["ms_per_frame"] = round(1000.0 * runs[name].seconds / max(len(runs[name].detections), 1), 1)
        results[name] = summary
    return {name: results[name] for name in runs if name in results}


def scored_frames(truth: dict[int, FrameTruth], n_frames: int, first_unscored: int = UNSCORED_FRAMES) -> list[int]:
    """gt frames after the unscored ones, up to the number of frames run (frames without gt rows count too)."""
    return list(range(first_unscored + 1, n_frames + 1))


def hog_params_for(video: str | Path, scale: float | None = None) -> HogParams:
    return HogParams(scale=hog_scale_for(video) if scale is None else scale)


def load_truth(path: str | Path) -> dict[int, FrameTruth]:
    return load_mot_gt(path)
