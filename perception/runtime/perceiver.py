"""``Perceiver``: one frame in, one ``PerceptionResult`` out (preprocess -> encoder -> detector -> pictures).

The encoder's streaming state, the detector (which tracks, so it has state too) and the PCA colour basis are kept
per stream key, so one model serves several cameras: ``process(frame, stream="cam0")``. Nothing else is shared
between streams, so a replay of one stream is deterministic whatever the others do.

Per frame: ``Preprocessor`` (resize, to device, [0, 1]) -> ``encoder.encode(x, state)`` under the configured
autocast -> the detector on the resized image and the fp32 dense map -> boxes mapped back to input pixels ->
features ``(h, w, C)`` float32 -> PCA picture and overlay only when ``runtime.publish_pca`` /
``runtime.publish_debug`` are on. ``timings_ms`` has ``preprocess``, ``encoder``, ``detection``, ``visualise``
and ``total``. Stamps, frame id and seq are copied from the input frame. With ``runtime.overlap_global`` (CPU) the
global stream's share of the frame runs on a helper thread while the local stream runs (``runtime/beside.py``), also
with an adapter attached unless it adapts global-stream parameters.
With ``runtime.overlap_detection`` a
detector that has an image-only half (``prepare(image)``: motion, the background model) gets it started on a thread
of its own right after preprocessing, so it runs while the encoder does; ``detection`` then times its feature half
(and any wait for the first).

Online adaptation (optional): ``attach_adapter(adapter, stream)`` with an object that has ``before_frame()`` and
``after_frame(frame_image, output)`` (``perception.adaptation.OnlineAdapter``). Before each encode of that stream the
adapter may swap in a complete new parameter set (the frame boundary); after it, the adapter gets the encoder input
(the resized ``(H, W, 3)`` uint8 frame) and the ``EncoderOutput``. Neither waits for an update in progress. A detector with
``set_calibration`` (the few-shot detector) calibrates that stream's frames to its stored background while the adapter
is attached (``perception.adaptation.frame_calibration``: its image cues otherwise call a whole dimmed, hazy or noisy
frame foreground), except while the adapter serves the source model (``serving_source``: its guard fell back), when
the stream is served exactly as without an adapter; decided at each frame boundary, carried to ``finish`` with the
frame, and back on (a fresh calibrator) after the adapter's reset. A swap that changes
global-stream parameters drops a staged global run in progress (``encoder.global_stages``): its remaining blocks
would run with other parameters than its first ones; the next keyframe starts a new run.

Start-up runs ``runtime.warmup_frames`` blank frames at the encoder input size on a throwaway stream: the first
frames otherwise pay one-time costs (kernel selection, allocations; about 0.5 s for dualstream_tiny on a 2-core
CPU), which a latest-only consumer turns into several dropped frames.
"""

from __future__ import annotations

import dataclasses
import inspect
import logging
import threading
import time
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from perception.config import ConfigError, DetectorConfig
from perception.detection.types import Detections
from perception.io.frame import Frame
from perception.models.types import EncoderOutput, EncoderState
from perception.runtime.allocator import keep_frame_buffers
from perception.runtime.beside import Beside
from perception.runtime.blas import pin_single_threaded_blas, single_threaded_blas
from perception.runtime.device import (autocast, auto_threads, resolve_device, resolve_precision,
                                      set_switch_interval, set_threads)
from perception.runtime.gpu import compile_encoder, new_graph_step, owned, uncompile_encoder
from perception.runtime.model_loading import load_encoder
from perception.runtime.preprocess import Preprocessed, Preprocessor, scale_boxes_to_input
from perception.runtime.result import PerceptionResult
from perception.runtime.visualize import FeaturePCA, draw_overlay

log = logging.getLogger(__name__)

DEFAULT_STREAM = "default"


def _build_detector(cfg: DetectorConfig) -> Any:
    from perception.detection.detector import build_detector  # noqa: PLC0415 (heavy; loaded with the perceiver)

    try:
        return build_detector(cfg)
    except ValueError as exc:
        raise ConfigError(str(exc)) from exc


def normalisation(encoder: Any) -> dict:
    """``{"mean": ..., "std": ...}`` for a ``Preprocessor`` when ``encoder`` normalises its input with ``mean`` and
    ``std`` buffers and its ``encode`` takes ``normalised=True``; else ``{}``."""
    mean, std = getattr(encoder, "mean", None), getattr(encoder, "std", None)
    if not isinstance(mean, torch.Tensor) or not isinstance(std, torch.Tensor) or mean.numel() != 3:
        return {}
    if "normalised" not in inspect.signature(encoder.encode).parameters:
        return {}
    return {"mean": mean.flatten().tolist(), "std": std.flatten().tolist()}


def encode(encoder: Any, pre: Preprocessed | list[Preprocessed], state: EncoderState | None,
           beside: Beside | None = None) -> tuple[EncoderOutput, EncoderState]:
    """``encoder.encode`` on one preprocessed frame or a batch of them (one per camera), normalised already when
    the preprocessor did it; ``beside``: the helper thread for the global stream's share
    (``runtime.overlap_global``)."""
    items = pre if isinstance(pre, list) else [pre]
    frames = items[0].encoder_input if len(items) == 1 else torch.cat([p.encoder_input for p in items])
    kwargs: dict[str, Any] = {"beside": beside} if beside is not None else {}
    if items[0].normalised is not None:
        return encoder.encode(frames, state, normalised=True, **kwargs)
    return encoder.encode(frames, state, **kwargs)


@dataclass
class StreamState:
    """Everything the perceiver remembers about one camera."""

    encoder: EncoderState | None
    detector: Any
    pca: FeaturePCA = field(default_factory=FeaturePCA)
    frames: int = 0
    unused_prepared: tuple | None = None  # (seq, stamp, image shape, prepared) of a frame whose encode failed


@dataclass
class Encoded:
    """A frame between ``Perceiver.encode`` and ``Perceiver.finish``."""

    frame: Frame
    pre: Preprocessed
    output: EncoderOutput
    state: StreamState
    timings: dict[str, float]
    started: float  # perf_counter at the start of encode
    calibrate: bool | None = None  # the detector's frame calibration for this frame (None: as it is)
    prepared: tuple[Any, Future] | None = None  # (detector, its prepare(image) running beside the encoder)


class Perceiver:
    """``Perceiver(cfg)`` with ``cfg.encoder``, ``cfg.detector`` and ``cfg.runtime`` (a ``Config`` or a node config).

    Attributes: ``device``, ``precision`` ("fp32" | "bf16" | "fp16"), ``encoder`` (eval mode), ``encoder_source``
    ("checkpoint" | "default" | "random") and ``encoder_path``.
    """

    def __init__(self, cfg: Any) -> None:
        self.cfg = cfg
        keep_frame_buffers()  # the graph's malloc thresholds in a process started without them (runtime/allocator.py)
        self.device = resolve_device(cfg.runtime.device)
        self.precision = resolve_precision(cfg.runtime.precision, self.device)
        self.threads = set_threads(cfg.runtime.threads or auto_threads(self.device,
                                                                       bool(getattr(cfg.runtime, "pipelined", False))))
        self.switch_interval_ms = set_switch_interval(float(getattr(cfg.runtime, "switch_interval_ms", 0.0)))
        pin_single_threaded_blas()  # detection, its preparation and monitoring run on several threads at once
        loaded = load_encoder(cfg.encoder, self.device)
        self.encoder = loaded.model
        mode = getattr(cfg.runtime, "compile", "none")
        if mode != "none" and self.device.type != "cuda":
            raise ConfigError(f"runtime.compile '{mode}' needs a CUDA device (on {self.device} the eager encoder is "
                              "faster: perception/runtime/gpu.py); expected none")
        self.compiled = compile_encoder(self.encoder, mode)
        self._graphs = self.compiled and mode == "cuda_graphs"
        self.encoder_source, self.encoder_path = loaded.source, loaded.path
        self.preprocess = Preprocessor(self.device, cfg.encoder.input_width, cfg.encoder.input_height,
                                       stride=int(getattr(self.encoder, "stride", 8)), **normalisation(self.encoder))
        _build_detector(cfg.detector)  # a bad detector setting fails here, not at the first frame
        self._detector_cfg: DetectorConfig = cfg.detector
        self._streams: dict[str, StreamState] = {}
        self._lock = threading.RLock()
        self.adapter: Any = None
        self._adapt_stream: str | None = DEFAULT_STREAM
        self._overlap = bool(getattr(cfg.runtime, "overlap_detection", False))
        # the global stream's share of each frame beside the local stream (CPU; off while adapting, see _encoder_half)
        self._beside = (Beside("global_share") if getattr(cfg.runtime, "overlap_global", False)
                        and self.device.type == "cpu" and "beside" in inspect.signature(self.encoder.encode).parameters
                        else None)
        self._preparer: Beside | None = None  # one thread: frames are prepared in order
        log.info("perceiver: encoder %s (%s%s) on %s, %s, %d threads", cfg.encoder.name, self.encoder_source,
                 f" {self.encoder_path}" if self.encoder_path else "", self.device, self.precision, self.threads)
        warmup_frames = int(getattr(cfg.runtime, "warmup_frames", 0))
        if warmup_frames > 0:
            self.warmup(cfg.encoder.input_width or 640, cfg.encoder.input_height or 480, warmup_frames)

    # -- state ---------------------------------------------------------------------------------------------------
    def _stream(self, key: str) -> StreamState:
        state = self._streams.get(key)
        if state is None:
            state = StreamState(encoder=None, detector=_build_detector(self._detector_cfg))
            self._calibrate(key, state.detector)
            self._streams[key] = state
        return state

    @property
    def streams(self) -> list[str]:
        return list(self._streams)

    def reset(self, stream: str | None = None) -> None:
        """Forget the history of one stream (or of all): encoder state, tracks, PCA basis."""
        with self._lock:
            if stream is None:
                self._streams.clear()
            else:
                self._streams.pop(stream, None)

    def refit_pca(self, stream: str | None = None) -> None:
        """Fit the PCA colours again on the next frame of ``stream`` (or of every stream)."""
        with self._lock:
            for key, state in self._streams.items():
                if stream is None or key == stream:
                    state.pca.refit()

    def attach_adapter(self, adapter: Any, stream: str | None = DEFAULT_STREAM) -> None:
        """Adapt the encoder online from the frames of ``stream`` (None: of every stream); ``None`` detaches."""
        if adapter is not None:
            self.uncompile()
        with self._lock:
            self.adapter, self._adapt_stream = adapter, stream
            for key, state in self._streams.items():
                self._calibrate(key, state.detector)

    def uncompile(self) -> None:
        """Serve the eager encoder modules from now on (``runtime.compile`` undone): online adaptation copies the
        serving model, hooks its streams and swaps parameters into it, which compiled graphs would not see."""
        if self.compiled:
            log.info("perceiver: online adaptation needs the eager encoder; runtime.compile undone")
            with self._lock:
                uncompile_encoder(self.encoder)
                self.compiled = self._graphs = False

    def _calibrate(self, key: str, detector: Any) -> None:
        """Frame calibration on for the detector of a stream that adapts, off otherwise (detectors without it:
        nothing)."""
        setter = getattr(detector, "set_calibration", None)
        if setter is not None:
            setter(self.adapter is not None and self._adapt_stream in (None, key)
                   and not getattr(self.adapter, "serving_source", False))

    def frame_calibration(self, stream: str = DEFAULT_STREAM) -> str:
        """The detector's frame calibration on ``stream``, for diagnostics: ``n/a`` (a detector without it, or no
        frame yet), ``off``, or what the calibrator applies now (``FrameCalibrator.summary``)."""
        state = self._streams.get(stream)
        detector = None if state is None else state.detector
        if detector is None or not hasattr(detector, "set_calibration"):
            return "n/a"
        calibrator = getattr(detector, "calibrator", None)
        return "off" if calibrator is None else calibrator.summary()

    def update_detector(self, cfg: DetectorConfig) -> None:
        """Use new detector settings from the next frame on (tracks start over: a new detector per stream)."""
        with self._lock:
            detectors = {key: _build_detector(cfg) for key in self._streams}  # all or none on a bad setting
            if not detectors:
                _build_detector(cfg)  # no stream yet: still refuse a bad setting now, not at the next frame
            self._detector_cfg = cfg
            for key, detector in detectors.items():
                self._calibrate(key, detector)
                self._streams[key].detector = detector

    def warmup(self, width: int, height: int, frames: int = 2) -> float:
        """Run ``frames`` blank frames of ``width x height`` on a throwaway stream, so that one-time costs (kernel
        selection, allocator growth) are not paid by the first real frames; returns the seconds it took."""
        started = time.perf_counter()
        blank = np.zeros((height, width, 3), np.uint8)
        key = "__warmup__"
        with self._lock:
            try:
                for i in range(frames):
                    self._process(Frame(image=blank, stamp_ns=i, seq=i), self._stream(key))
            finally:
                self._streams.pop(key, None)
        return time.perf_counter() - started

    # -- processing ----------------------------------------------------------------------------------------------
    def _sync(self) -> None:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)

    def process(self, frame: Frame, stream: str = DEFAULT_STREAM) -> PerceptionResult:
        """Run the whole chain on ``frame`` as the next frame of ``stream``."""
        return self.finish(self.encode(frame, stream))

    def encode(self, frame: Frame, stream: str = DEFAULT_STREAM) -> Encoded:
        """The first half of ``process``: preprocess, the adapter's frame boundary, the encoder. ``finish`` does the
        rest; it may run on another thread while this one encodes the next frame of the same stream (a
        ``perception.runtime.staged.TwoStage``), since the two halves share no state: the encoder state and the
        adapter belong to this half, the detector, PCA basis and frame count to the other."""
        with self._lock:
            adapt = self.adapter is not None and self._adapt_stream in (None, stream)
            return self._encode(frame, self._stream(stream), adapt)

    def finish(self, encoded: Encoded) -> PerceptionResult:
        """The second half of ``process``: detection, pictures, the result (``timings_ms['total']`` spans both
        halves, the wait between them included)."""
        setter = getattr(encoded.state.detector, "set_calibration", None)
        if encoded.calibrate is not None and setter is not None:
            setter(encoded.calibrate)  # off while the adapter serves the source model (fallback), on again after
        result = self.heads(encoded.frame, encoded.pre, encoded.output, 0, encoded.state, encoded.timings,
                            encoded.prepared)
        encoded.timings["total"] = (time.perf_counter() - encoded.started) * 1000.0
        return result

    def _process(self, frame: Frame, state: StreamState, adapt: bool = False) -> PerceptionResult:
        return self.finish(self._encode(frame, state, adapt))

    def _encode(self, frame: Frame, state: StreamState, adapt: bool = False) -> Encoded:
        timings: dict[str, float] = {}
        t0 = t = time.perf_counter()

        pre = self.preprocess(frame.image)
        self._sync()
        timings["preprocess"], t = (time.perf_counter() - t) * 1000.0, time.perf_counter()
        prepared = self._prepare(state, frame, pre.image)
        try:
            output, calibrate = self._encoder_half(pre, state, adapt)
        except BaseException:
            if prepared is not None:  # the retry of this frame (out-of-memory ladder) uses it: one prepare a frame
                state.unused_prepared = (frame.seq, frame.stamp_ns, pre.image.shape, prepared)
            raise
        timings["encoder"] = (time.perf_counter() - t) * 1000.0
        return Encoded(frame, pre, output, state, timings, t0, calibrate, prepared)

    def _encoder_half(self, pre: Preprocessed, state: StreamState, adapt: bool) -> tuple[EncoderOutput, bool | None]:
        """The adapter's frame boundary, the encoder, the adapter's look at the output; ``(output, calibrate)``."""
        calibrate = None
        if adapt:
            applied = self.adapter.before_frame()  # a complete new parameter set, if one was published
            calibrate = not getattr(self.adapter, "serving_source", False)
            pending = state.encoder.pending if state.encoder is not None else None
            if applied is not None and pending is not None and getattr(self.adapter, "touches_global_stream", True):
                state.encoder.pending = None  # a staged global run would mix two versions of the ViT's parameters
        if self._graphs:
            new_graph_step()
        # an adapter swaps parameters at the frame boundary (before this encode) and hooks the local stream's units on
        # this thread; the global share beside reads only global-stream modules, so it stays beside unless the adapter
        # adapts those (or does not say)
        beside = (self._beside if self.adapter is None or not getattr(self.adapter, "touches_global_stream", True)
                  else None)
        with torch.inference_mode(), autocast(self.device, self.precision):
            output, state.encoder = encode(self.encoder, pre, state.encoder, beside)
        if self._graphs:
            output = owned(output)
        if adapt:
            self.adapter.after_frame(pre.image, output)  # the uint8 frame: no [0, 1] copy made for it
        return output, calibrate

    def _prepare(self, state: StreamState, frame: Frame, image: np.ndarray) -> tuple[Any, Future] | None:
        """Start ``detector.prepare(image)`` (the image-only half of its work: motion, background model) on the
        preparing thread, so that it runs while this thread encodes (``runtime.overlap_detection``); None when off or
        the detector has no such half. Measured in the ROS graph on the 2-core CPU: see the README's performance
        section."""
        unused, state.unused_prepared = state.unused_prepared, None
        if (unused is not None and unused[:3] == (frame.seq, frame.stamp_ns, image.shape)
                and unused[3][0] is state.detector):
            return unused[3]
        detector = state.detector
        prepare = getattr(detector, "prepare", None)
        if not self._overlap or prepare is None:
            return None
        if self._preparer is None:
            self._preparer = Beside("detector_prepare")
        return detector, self._preparer(prepare, image)

    def heads(self, frame: Frame, pre: Preprocessed, output: EncoderOutput, index: int, state: StreamState,
              timings: dict[str, float], prepared: tuple[Any, Future] | None = None) -> PerceptionResult:
        """Item ``index`` of an encoder ``output`` batch -> the frame's result: dense features, detections (in the
        input frame's pixels, with ``state``'s tracker), PCA and overlay when asked for. Adds the ``detection`` and
        ``visualise`` timings; the caller sets ``total``. Shared by ``process`` and the multi-camera batch.
        ``prepared``: the detector's image-only half of this frame, started by ``_encode`` (used when the stream
        still has that detector; a replaced detector prepares the frame itself)."""
        runtime = self.cfg.runtime
        t = time.perf_counter()
        dense = output.dense[index].float()  # (C, h, w)
        features = np.ascontiguousarray(dense.permute(1, 2, 0).cpu().numpy())  # (h, w, C) float32
        keyframe = bool(output.keyframe[index]) if output.keyframe is not None else False
        embedding = output.global_embedding[index].float().cpu().numpy()
        ready = None
        if prepared is not None:
            detector, future = prepared
            ready = future.result()  # what prepare raised is raised here, in this frame's second half
            if detector is not state.detector:
                ready = None
        dense_chw = torch.from_numpy(features).permute(2, 0, 1)
        with single_threaded_blas():  # small matrices: BLAS threads only spin (perception.runtime.blas)
            if ready is None:
                found = state.detector.detect(pre.image, dense_chw)
            else:
                found = state.detector.detect(pre.image, dense_chw, prepared=ready)
        detections = self._to_input_pixels(found, pre.scale_x, pre.scale_y, frame.width, frame.height)
        timings["detection"], t = (time.perf_counter() - t) * 1000.0, time.perf_counter()

        pca = state.pca(dense) if runtime.publish_pca else None
        overlay = draw_overlay(frame.image, detections) if runtime.publish_debug else None
        timings["visualise"] = (time.perf_counter() - t) * 1000.0
        state.frames += 1
        return PerceptionResult(
            stamp_ns=frame.stamp_ns, frame_id=frame.frame_id, seq=frame.seq, detections=detections,
            features=features, pca=pca, overlay=overlay, global_embedding=embedding, keyframe=keyframe,
            timings_ms=timings,
        )

    @staticmethod
    def _to_input_pixels(found: Detections, sx: float, sy: float, width: int, height: int) -> Detections:
        """Boxes from encoder pixels to input pixels, clipped to the input image."""
        if len(found) == 0 or (sx == 1.0 and sy == 1.0):
            return found
        boxes = scale_boxes_to_input(found.boxes, sx, sy)
        x0 = np.clip(boxes[:, 0], 0, width)
        y0 = np.clip(boxes[:, 1], 0, height)
        x1 = np.clip(boxes[:, 0] + boxes[:, 2], 0, width)
        y1 = np.clip(boxes[:, 1] + boxes[:, 3], 0, height)
        boxes = np.stack([x0, y0, x1 - x0, y1 - y0], axis=1).astype(np.float32)
        return dataclasses.replace(found, boxes=boxes)
