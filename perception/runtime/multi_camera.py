"""``MultiCameraPerceiver``: several cameras through ONE encoder, their frames batched, their state kept apart.

N copies of a perception node hold N copies of the weights (and of the CUDA context and workspace) in GPU memory;
this holds one. Per camera it keeps what a ``Perceiver`` keeps per stream (``StreamState``: encoder streaming state,
detector with its tracks, PCA colour basis), so tracks, ids and stamps of one camera never mix with another's.

Batching rests on the explicit streaming API ``encode(frames, state) -> (output, state)`` with batch-first state
tensors (``perception.models.types``): the frames that arrived together are grouped by what must agree inside one
``encode`` call: the preprocessed size, whether the camera has history, its global-token grid, and whether this is
its keyframe (the global stream runs on the whole batch or not at all). Each group's states are concatenated along
the batch dimension, encoded once, and split back per camera (each keeps its own ``frame_index``).

Cameras started together stay in phase, so one group is one ``encode`` call. A camera that skipped a frame (the
latest-only hand-off drops frames under load) would fall out of keyframe phase for good and be encoded apart from
then on; with ``align_keyframes`` (default) its frame count is moved to the phase most cameras of the batch share,
so its next keyframe comes up to ``global_every - 1`` frames earlier or later, once, and it batches again.

With ``align_keyframes=False`` batched outputs equal one-by-one outputs (``Perceiver.process`` per stream) up to
floating-point summation order (tested: features within 1e-4, same boxes and track ids).
"""

from __future__ import annotations

import dataclasses
import time
from collections import Counter
from typing import Any, Mapping, Sequence

import torch

from perception.detection.detector import build_detector
from perception.io.frame import Frame
from perception.models.types import EncoderOutput, EncoderState
from perception.runtime.device import autocast
from perception.runtime.perceiver import Perceiver, StreamState, encode
from perception.runtime.gpu import new_graph_step, owned
from perception.runtime.preprocess import Preprocessed
from perception.runtime.result import PerceptionResult

_STATE_TENSORS = ("memory", "global_tokens", "global_cls")


def stack_states(states: Sequence[EncoderState]) -> EncoderState:
    """One batched state from per-camera batch-1 states with the same history shape (see ``group_key``)."""
    first = states[0]
    fields = {name: None if getattr(first, name) is None else torch.cat([getattr(s, name) for s in states])
              for name in _STATE_TENSORS}
    pending = None
    if first.pending is not None:
        pending = dataclasses.replace(first.pending, tokens=torch.cat([s.pending.tokens for s in states]))
    return EncoderState(global_grid=first.global_grid, frame_index=first.frame_index,
                        extra={**first.extra, "batch": len(states)}, pending=pending, **fields)


def split_state(state: EncoderState, previous: Sequence[EncoderState | None]) -> list[EncoderState]:
    """Per-camera batch-1 states from a batched one; camera i continues its own frame count."""
    out = []
    for i, prev in enumerate(previous):
        fields = {name: None if getattr(state, name) is None else getattr(state, name)[i:i + 1]
                  for name in _STATE_TENSORS}
        index = (prev.frame_index if prev is not None else 0) + 1
        extra = {**(prev.extra if prev is not None else {}), "batch": 1}
        pending = None
        if state.pending is not None:
            pending = dataclasses.replace(state.pending, tokens=state.pending.tokens[i:i + 1])
        out.append(EncoderState(global_grid=state.global_grid, frame_index=index, extra=extra, pending=pending,
                                **fields))
    return out


def group_key(encoder: Any, state: EncoderState | None, tensor: torch.Tensor) -> tuple:
    """What must agree between cameras encoded in one call."""
    if state is None:
        return tuple(tensor.shape[1:]), False, None, True, None
    keyframe = bool(encoder.is_keyframe(state))
    stage = None if state.pending is None else (state.pending.grid, state.pending.done)  # staged global runs
    return tuple(tensor.shape[1:]), True, state.global_grid, keyframe, stage


class MultiCameraPerceiver:
    """``MultiCameraPerceiver(perceiver, ["front", "left", "right"]).process({"front": frame, ...})``.

    Uses ``perceiver``'s encoder, device, precision, preprocessing and detector settings; ``perceiver`` itself is not
    used to process frames. ``batches`` counts encode calls by batch size.
    """

    def __init__(self, perceiver: Perceiver, cameras: Sequence[str], align_keyframes: bool = True) -> None:
        if not cameras:
            raise ValueError("MultiCameraPerceiver: expected at least one camera")
        if len(set(cameras)) != len(cameras):
            raise ValueError(f"MultiCameraPerceiver: camera names repeat: {list(cameras)}")
        self.perceiver = perceiver
        self.cameras = list(cameras)
        self._detector_cfg = perceiver.cfg.detector
        self.states: dict[str, StreamState] = {c: self._new_state() for c in self.cameras}
        self.batches: Counter[int] = Counter()
        self.align_keyframes = align_keyframes
        self.realigned = 0

    @property
    def encoder(self) -> torch.nn.Module:
        return self.perceiver.encoder

    def _new_state(self) -> StreamState:
        return StreamState(encoder=None, detector=build_detector(self._detector_cfg))

    def reset(self, camera: str | None = None) -> None:
        """Forget one camera's history (or every camera's): encoder state, tracks, PCA basis."""
        for c in [camera] if camera else self.cameras:
            self.states[c] = self._new_state()

    def update_detector(self, cfg: Any) -> None:
        """New detector settings for every camera from the next frame (tracks start over)."""
        detectors = {c: build_detector(cfg) for c in self.cameras}
        self._detector_cfg = cfg
        for c, detector in detectors.items():
            self.states[c].detector = detector

    def process(self, frames: Mapping[str, Frame]) -> dict[str, PerceptionResult]:
        """One frame from some or all cameras -> one result per camera given (same keys)."""
        unknown = [c for c in frames if c not in self.states]
        if unknown:
            raise KeyError(f"unknown camera(s) {unknown}; configured: {self.cameras}")
        started = time.perf_counter()
        pre = {c: self.perceiver.preprocess(frame.image) for c, frame in frames.items()}
        pre_ms = (time.perf_counter() - started) * 1000.0
        if self.align_keyframes:
            self._align([c for c in frames if self.states[c].encoder is not None])
        groups: dict[tuple, list[str]] = {}
        for c in frames:
            groups.setdefault(group_key(self.encoder, self.states[c].encoder, pre[c].encoder_input), []).append(c)
        results: dict[str, PerceptionResult] = {}
        for members in groups.values():
            t = time.perf_counter()
            outputs = self._encode([pre[c] for c in members], members)
            encode_ms = (time.perf_counter() - t) * 1000.0
            for i, c in enumerate(members):
                timings = {"preprocess": pre_ms / len(frames), "encoder": encode_ms, "batch": float(len(members))}
                results[c] = self._finish(frames[c], pre[c], outputs, i, self.states[c], timings)
        return {c: results[c] for c in frames}

    def _align(self, cameras: list[str]) -> None:
        """Move the frame count of out-of-phase cameras to the phase most of ``cameras`` share."""
        every = int(getattr(self.encoder, "global_every", 1))
        if every <= 1 or len(cameras) < 2:
            return
        phases = Counter(self.states[c].encoder.frame_index % every for c in cameras)
        target = phases.most_common(1)[0][0]
        for c in cameras:
            state = self.states[c].encoder
            shift = (target - state.frame_index % every) % every
            if shift:
                state.frame_index += shift
                state.pending = None  # a staged run begun in the old phase; the next keyframe starts a new one
                self.realigned += 1

    def _encode(self, pre: list[Preprocessed], members: list[str]) -> EncoderOutput:
        previous = [self.states[c].encoder for c in members]
        batch_state = None if previous[0] is None else stack_states(previous)
        graphs = getattr(self.perceiver, "_graphs", False)
        if graphs:
            new_graph_step()
        with torch.inference_mode(), autocast(self.perceiver.device, self.perceiver.precision):
            output, new_state = encode(self.encoder, pre, batch_state)
        if graphs:
            output = owned(output)
        for c, state in zip(members, split_state(new_state, previous)):
            self.states[c].encoder = state
        self.batches[len(members)] += 1
        return output

    def _finish(self, frame: Frame, pre: Preprocessed, output: EncoderOutput, i: int, state: StreamState,
                timings: dict[str, float]) -> PerceptionResult:
        t = time.perf_counter()
        result = self.perceiver.heads(frame, pre, output, i, state, timings)
        timings["total"] = timings["preprocess"] + timings["encoder"] + (time.perf_counter() - t) * 1000.0
        return result
