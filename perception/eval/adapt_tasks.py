"""The two tasks of the adaptation benchmark (``perception.eval.adapt``): DAVIS label propagation (J&F) and MOT15
person detection (AP50), each over every (shift, method) pair on the same frames, streamed once in order."""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

import cv2
import numpy as np
import torch
from torch import nn

from perception.config import DetectorConfig
from perception.eval.adapt import ADAPTIVE, AdaptSettings, Log, StreamModel, shifted, to_tensor
from perception.eval.davis import DavisSequence, load_sequence
from perception.eval.detect import MethodRun, _as_frame_dets, evaluate, load_truth, read_video, scored_frames
from perception.eval.features import l2_normalise_cells
from perception.eval.propagate import PropagationParams, evaluate_sequence

Scores = dict[str, dict[str, float]]
Guard = dict[str, dict[str, dict[str, Any]]]


class AdaptiveFeatures:
    """A ``FeatureExtractor`` over a ``StreamModel``: unit-norm features of each (padded) frame, from the encoder's
    ``readout`` map (``dense``, the fused map, or ``local``, the local stream's)."""

    def __init__(self, stream: StreamModel, label: str, log: Log, readout: str = "dense") -> None:
        if readout not in ("dense", "local"):
            raise ValueError(f"AdaptiveFeatures: readout must be 'dense' or 'local', got {readout!r}")
        self.stream, self.name, self.log, self.readout = stream, stream.method, log, readout
        self.label, self.count, self.started = label, 0, time.time()

    def reset(self) -> None:
        self.stream.reset_state()

    def __call__(self, frame: np.ndarray) -> torch.Tensor:
        output = self.stream.encode(to_tensor(frame))
        dense = output.dense if self.readout == "dense" else output.local
        self.count += 1
        if self.count % 10 == 0:
            self.log(f"[eval adapt] {self.label} {self.name}: frame {self.count} ({time.time() - self.started:.0f} s)")
        return l2_normalise_cells(dense[0].float()).cpu()


def scaled_sequence(seq: DavisSequence, scale: float) -> DavisSequence:
    """Frames resized by ``scale`` (area), masks by nearest neighbour; the sequence itself when ``scale == 1``."""
    if scale == 1.0:
        return seq
    h, w = seq.frames.shape[1:3]
    size = (max(8, int(round(w * scale))), max(8, int(round(h * scale))))
    frames = np.stack([cv2.resize(f, size, interpolation=cv2.INTER_AREA) for f in seq.frames])
    masks = np.stack([cv2.resize(m.astype(np.uint8), size, interpolation=cv2.INTER_NEAREST) > 0 for m in seq.masks])
    return DavisSequence(seq.name, frames, masks)


def sync_calibration(stream: StreamModel, detector: Any) -> None:
    """The adaptive methods' detector calibrates its frames, except after their guard fell back to the source model
    (then the frame is served as ``frozen`` serves it; back on after a reset). Call after each ``encode``."""
    if stream.method in ADAPTIVE and detector is not None:
        detector.set_calibration(not stream.serving_source)


def warm_up(stream: StreamModel, frames: Sequence[np.ndarray], count: int, scale_input=to_tensor,
            detector: Any = None) -> None:
    """Stream the first ``count`` of ``frames`` (cycled) through ``stream`` unscored, then forget the streaming state:
    the camera has been running under the condition for a while before the scored frames (what is adapted stays).
    With a ``detector`` it runs on those frames too (the same for every method), so its background model and, when
    on, its frame calibration have seen the condition; its tracks are dropped afterwards, its background kept."""
    for i in range(count if frames else 0):
        frame = frames[i % len(frames)]
        output = stream.encode(scale_input(frame))
        if detector is not None:
            sync_calibration(stream, detector)
            detector.detect(frame, output.dense[0].float())
    stream.reset_state()
    if detector is not None:
        detector.reset_tracks()


def run_propagate(root: str, names: Sequence[str], source: nn.Module, shifts: Sequence[str], methods: Sequence[str],
                  settings: AdaptSettings, max_frames: int = 0, scale: float = 1.0, log: Log = print,
                  warmup: int = 0, readout: str = "dense") -> tuple[Scores, dict, Guard]:
    """J&F (mean over sequences) of each method under each shift, reading correspondence from the encoder's
    ``readout`` map; the sequences run back to back as one stream, after ``warmup`` unscored frames of the same
    shifted stream (``warm_up``)."""
    clean = [scaled_sequence(load_sequence(root, n, max_frames), scale) for n in names]
    params = PropagationParams(radius=max(1, int(round(PropagationParams().radius * scale))))
    scores: Scores = {}
    details: dict = {}
    guard: Guard = {}
    for shift in shifts:
        seqs = [DavisSequence(s.name, np.stack(shifted(list(s.frames), shift)), s.masks) for s in clean]
        scores[shift], details[shift], guard[shift] = {}, {}, {}
        for method in methods:
            started = time.time()
            stream = StreamModel(source, method, settings)
            warm_up(stream, [f for q in seqs for f in q.frames], warmup)
            extractor = AdaptiveFeatures(stream, shift, log, readout)
            per_seq = {s.name: evaluate_sequence(s, extractor, params) for s in seqs}
            jf = float(np.mean([r["JF"] for r in per_seq.values()]))
            scores[shift][method] = jf
            details[shift][method] = {name: {k: round(r[k], 4) for k in ("J", "F", "JF")} | {"frames": r["frames"]}
                                      for name, r in per_seq.items()}
            guard[shift][method] = stream.guard_summary()
            log(f"[eval adapt] {shift:>11s} {method:>17s}: J&F {jf:.3f} ({time.time() - started:.0f} s; guard "
                f"{guard[shift][method]['rollbacks']} rollbacks, {guard[shift][method]['trips']} trips)")
    return scores, details, guard


def encoder_input(image: np.ndarray, scale: float) -> torch.Tensor:
    """The frame resized by ``scale`` (each side a multiple of 8), as the detection benchmark encodes it."""
    if scale != 1.0:
        h, w = image.shape[:2]
        size = (max(8, int(round(w * scale / 8)) * 8), max(8, int(round(h * scale / 8)) * 8))
        image = cv2.resize(image, size, interpolation=cv2.INTER_AREA)
    return to_tensor(image)


def run_detect(video: str, gt: str, source: nn.Module, head: Any, shifts: Sequence[str], methods: Sequence[str],
               settings: AdaptSettings, max_frames: int = 0, encoder_scale: float = 0.5, log: Log = print,
               warmup: int = 0) -> tuple[Scores, dict, Guard]:
    """AP50 of the few-shot person head on each method's features under each shift (gt frames 6.. scored). The
    adaptive methods' detector calibrates its frames to the head's background (``FewShotDetector(calibrate=True)``,
    as the perceiver does for a stream that adapts) until their guard falls back to the source model
    (``sync_calibration``); ``frozen`` and ``norm_stats`` use the frames as given."""
    from perception.detection.fewshot_detector import FewShotDetector  # noqa: PLC0415 (heavy)

    frames = list(read_video(video, max_frames))
    truth = load_truth(gt)
    scored = scored_frames(truth, len(frames))
    if not scored:
        raise ValueError(f"{video}: {len(frames)} frames; at least 6 are needed (gt frames 1-5 are not scored)")
    cfg = DetectorConfig()
    scores: Scores = {}
    details: dict = {}
    guard: Guard = {}
    for shift in shifts:
        images = shifted(frames, shift)
        scores[shift], details[shift], guard[shift] = {}, {}, {}
        for method in methods:
            started = time.time()
            stream = StreamModel(source, method, settings)
            detector = FewShotDetector(cfg, head, min_score=0.02, calibrate=method in ADAPTIVE)
            warm_up(stream, images, warmup, lambda f: encoder_input(f, encoder_scale), detector)
            run = MethodRun()
            for i, image in enumerate(images):
                dense = stream.encode(encoder_input(image, encoder_scale)).dense[0].float()
                sync_calibration(stream, detector)
                run.detections[i + 1] = _as_frame_dets(detector.detect(image, dense))
                if (i + 1) % 20 == 0:
                    log(f"[eval adapt] {shift} {method}: frame {i + 1}/{len(images)} ({time.time() - started:.0f} s)")
            run.seconds = time.time() - started
            result = evaluate({method: run}, truth, scored, cfg)[method]
            scores[shift][method] = float(result["ap50"])
            details[shift][method] = {k: result[k] for k in ("ap50", "precision", "recall", "fp_per_frame")}
            guard[shift][method] = stream.guard_summary()
            log(f"[eval adapt] {shift:>11s} {method:>17s}: AP50 {result['ap50']:.3f} ({run.seconds:.0f} s; guard "
                f"{guard[shift][method]['rollbacks']} rollbacks, {guard[shift][method]['trips']} trips)")
    return scores, details, guard
