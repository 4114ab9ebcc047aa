"""``OnlineAdapter``: label-free adaptation of a small parameter subset while the encoder serves frames.

Test-time adaptation on a stream, as TENT (Wang et al. 2021: normalisation affine parameters), EATA (Niu et al.
2022: anchored, filtered updates), CoTTA (Wang et al. 2022: EMA teacher, restore to source) and test-time training
on video streams (Wang et al. 2023: a sliding window of recent frames) do it, with the pretraining objectives of
this package (``AdaptationObjective``) and a guard (``AdaptationGuard``) because adaptation can make a model worse.

Threads: the inference side calls ``before_frame()`` (apply the newest published set, if any, at the frame
boundary) and ``after_frame(frame_tensor, output)`` (buffer the frame); neither waits for an update. A background
worker (``start()``) trains a private copy of the model's subset and publishes complete sets through
``VersionedParams`` after each update the guard accepts, within a budget (``max_updates_per_s``, ``compute_share``),
on its own CUDA stream on a GPU. ``step()`` runs one update synchronously (tests, benchmarks).
Persistence: ``save()`` / ``resume()`` (``perception.adaptation.persistence``), keyed by the source model's hash.

BN statistics (``norm_stats_momentum > 0``): a ``NormStatsTracker`` on the serving model records them from the
served frames' own activations and folds them in at frame boundaries (``before_frame``); the worker trains under
the latest copy. They follow the weights through the guard: a snapshot keeps the statistics its update trained
under, a rollback restores them with the weights, a fallback or reset returns them to the source's and a fallback
stops tracking, each delivered with the published weights (``VersionedParams`` attachments) so both change at the
same frame boundary. With ``norm_stats_gated`` the tracker measures only while the served frames are outside the
exposure objective's band (``ExposureBand``, the raw frame's luma mean / contrast): on footage inside it the
statistics stay the source's.
"""

from __future__ import annotations

import contextlib
import copy
import dataclasses
import logging
import math
import threading
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import torch
from torch import nn

from perception.adaptation.buffer import FrameBuffer, frame_image
from perception.adaptation.config import AdaptationConfig
from perception.adaptation.exposure import ExposureBand
from perception.adaptation.guard import DISABLED, FALLBACK_SOURCE, AdaptationGuard, HealthSample, health_sample
from perception.adaptation.input_adapter import attach_input_adapter
from perception.adaptation.norm_stats import NormStatsTracker, StatsSet, write_stats
from perception.adaptation.objective import AdaptationObjective
from perception.adaptation.params import (ParamSet, clone_set, copy_into, parse_patterns, select_parameters,
                                          state_hash)
from perception.adaptation.persistence import (StateMismatch, load_state, optimizer_tensors, restore_optimizer,
                                               save_state)
from perception.adaptation.swap import VersionedParams
from perception.runtime.stats import RollingStats

log = logging.getLogger(__name__)


@dataclass
class StepResult:
    """One update: its loss terms, the guard's action (``none`` | ``snapshot`` | ``rollback`` | ``fallback`` |
    ``unchecked``, or ``idle`` when there was nothing to adapt) and reasons, and the published version (None when nothing was published)."""

    loss: float
    parts: dict[str, float]
    action: str
    reasons: list[str] = field(default_factory=list)
    version: int | None = None
    seconds: float = 0.0


class StatsCommand(NamedTuple):
    """What the serving model's BN statistics do at the frame boundary that applies the weights it came with."""

    stats: dict[str, torch.Tensor]
    track: bool                    # keep tracking afterwards (False after a fallback to the source)


@dataclass
class ResumeResult:
    resumed: bool
    reason: str


class OnlineAdapter:
    """``OnlineAdapter(model, cfg, source_sha256=None)``: adapts ``model``'s subset in place at frame boundaries.

    ``source_sha256``: ``file_sha256`` of the source checkpoint; None hashes the model's state dict as given.
    """

    def __init__(self, model: nn.Module, cfg: AdaptationConfig, source_sha256: str | None = None) -> None:
        self.cfg = cfg
        self.model = model
        patterns = parse_patterns(cfg.param_patterns)
        self.source_sha256 = source_sha256 or state_hash(model.state_dict())
        if cfg.input_adapter:
            attach_input_adapter(model, cfg.input_channels)              # identity until it adapts: the source model's outputs
        self.serving = select_parameters(model, cfg.params, patterns, cfg.first_norms)
        self.names = list(self.serving)
        self._touches_global = any(name.startswith("global_stream.") for name in self.names)  # read every frame
        self.source: ParamSet = clone_set(self.serving)
        self.device = next(iter(self.serving.values())).device
        self.worker_model = copy.deepcopy(model).eval().requires_grad_(False)
        self.student = select_parameters(self.worker_model, cfg.params, patterns, cfg.first_norms)
        for p in self.student.values():
            p.requires_grad_(True)
        self.teacher: ParamSet = clone_set(self.source)
        self.snapshot: ParamSet = clone_set(self.source)
        self.optimizer = torch.optim.AdamW(list(self.student.values()), lr=cfg.lr, weight_decay=cfg.weight_decay)
        self.objective = AdaptationObjective(cfg)
        self.guard = AdaptationGuard(cfg)
        noise_term = cfg.exposure_weight > 0 and cfg.exposure_noise_max > 0 and cfg.input_adapter
        self.buffer = FrameBuffer(cfg.buffer_size, (cfg.train_height, cfg.train_width),
                                  (cfg.detail_height, cfg.detail_width) if noise_term else None)
        self.versions = VersionedParams(self.source)
        self.generator = torch.Generator().manual_seed(cfg.seed)
        self.updates = 0
        self.frames_seen = 0
        self.last: StepResult | None = None
        self.last_save_reason = ""
        self.rate = RollingStats()
        self._state_lock = threading.RLock()     # worker state vs. save / reset / snapshot calls; never inference
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._stream = torch.cuda.Stream(self.device) if self.device.type == "cuda" else None
        self._last_save = time.monotonic()
        # BN statistics re-estimated on the served frames (inference side; hooks added after the worker's copy)
        self.norm_stats = (NormStatsTracker(model, cfg.norm_stats_momentum, cfg.norm_stats_every)
                           if cfg.enabled and cfg.norm_stats_momentum > 0 else None)
        self.source_stats: StatsSet | None = self.norm_stats.source if self.norm_stats is not None else None
        self._stats: StatsSet | None = self.source_stats       # the statistics the worker trains under next
        self._stats_version = 0
        self.snapshot_stats: StatsSet | None = self.source_stats
        self._fallback_version = -1                              # the version of the fallback's source set
        # norm_stats_gated: statistics measured only while the served frames are outside natural footage's band
        self.stats_gate = (ExposureBand(cfg.exposure_mean, cfg.exposure_std, cfg.exposure_trigger_margin,
                                        cfg.exposure_trigger_factor if cfg.norm_stats_gate_contrast else math.inf,
                                        noise_max=cfg.norm_stats_gate_noise)
                           if self.norm_stats is not None and cfg.norm_stats_gated else None)
        if self.stats_gate is not None:
            self.norm_stats.gate_open = False

    # -- inference side ------------------------------------------------------------------------------------------
    @property
    def touches_global_stream(self) -> bool:
        """Whether the adapted subset has global-stream parameters (a staged global run must then not span a swap:
        its blocks would mix two parameter versions; the perceiver drops such a run)."""
        return self._touches_global

    def before_frame(self) -> int | None:
        """At a frame boundary: copy the newest published set into the serving model (with the BN statistics
        command it carries, if any) and fold the last frame's statistics in; the version applied or None."""
        tracker = self.norm_stats
        version = self.versions.apply_to(self.serving, self._apply_stats_command if tracker is not None else None)
        if tracker is not None:
            if tracker.enabled and self.guard.status in (DISABLED, FALLBACK_SOURCE):
                tracker.enabled = False                  # the fallback's command (source statistics) follows
            tracker.begin_frame()
        return version

    def _apply_stats_command(self, command: StatsCommand) -> None:
        tracker = self.norm_stats
        tracker.load(command.stats)
        tracker.enabled = command.track
        self._stats = command.stats

    def after_frame(self, frame: np.ndarray | torch.Tensor, output: Any = None) -> None:
        """Buffer every ``buffer_every``-th encoder input: the ``(H, W, 3)`` uint8 image the encoder saw, or the
        frame as ``(1, 3, H, W)`` in [0, 1] (``output`` is unused for now)."""
        keep = self.frames_seen % self.cfg.buffer_every == 0 and self.guard.status not in (DISABLED, FALLBACK_SOURCE)
        self.frames_seen += 1
        image = frame_image(frame) if keep or self.stats_gate is not None else None  # a float frame: quantised once
        if keep:
            self.buffer.push(image)
        tracker = self.norm_stats
        if self.stats_gate is not None:
            was_open, tracker.gate_open = tracker.gate_open, self.stats_gate(image)  # is the next frame measured
            if was_open and not tracker.gate_open and self.guard.status not in (DISABLED, FALLBACK_SOURCE):
                tracker.reset()     # natural footage again: served with the source statistics from the next frame
        if tracker is not None and tracker.enabled and tracker.version != self._stats_version:
            self._stats_version = tracker.version
            self._stats = tracker.snapshot()              # what the worker trains under at its next update

    # -- the update ----------------------------------------------------------------------------------------------
    @contextlib.contextmanager
    def _weights(self, values: Mapping[str, torch.Tensor]) -> Iterator[None]:
        """The worker model with ``values`` in its subset for the duration (restored afterwards)."""
        saved = clone_set(self.student)
        copy_into(self.student, values)
        try:
            yield
        finally:
            copy_into(self.student, saved)

    @torch.no_grad()
    def _dense_with(self, values: Mapping[str, torch.Tensor] | None, x: torch.Tensor) -> torch.Tensor:
        if values is None:
            return self.worker_model(x).dense.float()
        with self._weights(values):
            return self.worker_model(x).dense.float()

    def health(self, clip: torch.Tensor, loss: float) -> HealthSample:
        """The guard's signals: adapted vs source dense features on the same (clean) buffered frames."""
        return health_sample(self._dense_with(None, clip), self._dense_with(self.source, clip), loss)

    @torch.no_grad()
    def _exposure(self, clip: torch.Tensor, detail: torch.Tensor | None) -> float:
        """The exposure objective of the worker's current input adapter on ``clip`` and its ``detail`` crops (nan
        when the term is off)."""
        if self.cfg.exposure_weight <= 0 or getattr(self.worker_model, "input_adapter", None) is None:
            return float("nan")
        return float(self.objective.exposure(self.worker_model, clip, detail)[0])

    def _publish(self, values: Mapping[str, torch.Tensor], stats: StatsSet | None = None, track: bool = True,
                 fallback: bool = False) -> int:
        """Publish ``values``; with ``stats`` (and a tracker) the serving statistics are replaced by them at the
        same frame boundary, and tracking stops when ``track`` is false. ``fallback``: this is the fallback's source
        set (``serving_source`` is True from the frame boundary that applies it). Callers hold ``_state_lock``, the
        only publisher, so the next version is known before it is published."""
        if self._stream is not None:
            self._stream.synchronize()
        if fallback:
            self._fallback_version = self.versions.version + 1
        command = StatsCommand(stats, track) if stats is not None and self.norm_stats is not None else None
        return self.versions.publish(values, attachment=command)

    @property
    def serving_source(self) -> bool:
        """Whether the serving model is the source model because adaptation is off or its guard fell back (the
        fallback's set applied at a frame boundary, no reset since): the stream is then to be served exactly as
        without adaptation, so the perceiver also turns the detector's frame calibration off. Read on the inference
        side after ``before_frame``; exact at frame boundaries (``applied_version`` is the inference side's)."""
        return self.guard.status == DISABLED or self.versions.applied_version == self._fallback_version

    def _restore(self, values: Mapping[str, torch.Tensor]) -> None:
        copy_into(self.student, values)
        self.teacher = clone_set(values)
        self.optimizer.state.clear()

    def _idle(self) -> bool:
        """True when an optimizer step would leave the subset exactly as it is: every gradient zero, no moment
        carried over from earlier steps and no weight decay (an unshifted stream under the exposure objective: its
        hinges are flat inside the band). The update then skips its steps and the guard's two network forwards, so
        the worker costs next to nothing while there is nothing to adapt; the teacher already equals the student."""
        if self.cfg.weight_decay != 0:
            return False
        if any(p.grad is not None and bool(p.grad.any()) for p in self.student.values()):
            return False
        return all(not bool(t.any()) for state in self.optimizer.state.values() for k, t in state.items()
                   if k in ("exp_avg", "exp_avg_sq") and torch.is_tensor(t))

    def ready(self) -> bool:
        needed = max(self.cfg.min_frames, (self.cfg.clip_length - 1) * min(self.cfg.gaps) + 1)
        return self.guard.status not in (DISABLED, FALLBACK_SOURCE) and len(self.buffer) >= needed

    def step(self) -> StepResult | None:
        """One update from the buffer, guarded; None when not ready (too few frames, fallback or disabled)."""
        with self._state_lock:
            if not self.ready():
                return None
            started = time.perf_counter()
            stream = torch.cuda.stream(self._stream) if self._stream is not None else contextlib.nullcontext()
            with stream:
                result = self._update()
            result.seconds = time.perf_counter() - started
            self.last = result  # before the count: whoever sees the new count also sees this result (stats())
            self.updates += 1
            self.rate.tick(result.seconds * 1000.0)
            return result

    def _update(self) -> StepResult:
        cfg = self.cfg
        stats = self._stats
        if stats is not None and self.norm_stats is not None:
            write_stats(self.worker_model, stats)
        clip, detail = self.buffer.sample_clip(cfg.clip_length, cfg.gaps, self.generator, detail=True)
        clip, detail = clip.to(self.device), (detail.to(self.device) if detail is not None else None)
        before = self._exposure(clip, detail)
        for step in range(cfg.steps_per_update):
            total, parts, _ = self.objective(self.worker_model, clip, lambda x: self._dense_with(self.teacher, x),
                                             self.student, self.source, self.generator, detail)
            self.optimizer.zero_grad(set_to_none=True)
            if not (total.requires_grad and torch.isfinite(total)):
                break
            total.backward()
            if step == 0 and self._idle():               # nothing would move: no steps, no check, no publication
                return StepResult(loss=float(total.detach()), parts={k: float(v) for k, v in parts.items()},
                                  action="idle")
            self.optimizer.step()
        with torch.no_grad():
            for name, p in self.student.items():
                self.teacher[name].lerp_(p.detach(), 1.0 - cfg.ema_momentum)
        loss = float(total.detach())
        result = StepResult(loss=loss, parts={k: float(v) for k, v in parts.items()}, action="unchecked")
        if (self.updates + 1) % cfg.guard_every:  # this is update number updates + 1 (step() counts it)
            return result
        sample = self.health(clip, loss)
        sample.exposure_before, sample.exposure_after = before, self._exposure(clip, detail)
        verdict = self.guard.check(sample)
        result.action, result.reasons = verdict.action, verdict.reasons
        if verdict.ok:
            if verdict.action == "snapshot":
                self.snapshot = clone_set(self.student)
                self.snapshot_stats = stats
            result.version = self._publish(self.student)
        elif verdict.action == "rollback":
            self._restore(self.snapshot)
            result.version = self._publish(self.snapshot, self.snapshot_stats)
            log.warning("adaptation rolled back to the last snapshot: %s", "; ".join(verdict.reasons))
        elif verdict.action == "fallback":
            self._restore(self.source)
            result.version = self._publish(self.source, self.source_stats, track=False, fallback=True)
            log.error("adaptation fell back to the source model after %d trips: %s", self.guard.trips,
                      "; ".join(verdict.reasons))
        return result

    def trip(self, reason: str) -> str:
        """A trip signalled from outside the worker (a non-finite model output): back to the last good snapshot, or
        to the source after ``max_trips``, the BN statistics with the weights (a frame that produced NaN may have
        been measured); the swap happens at the next frame boundary. Returns the guard's action."""
        with self._state_lock:
            action = self.guard.trip()
            self.guard.last_reasons = [reason]
            if action == "fallback":
                self._restore(self.source)
                self._publish(self.source, self.source_stats, track=False, fallback=True)
            else:
                self._restore(self.snapshot)
                self._publish(self.snapshot, self.snapshot_stats)
        return action

    # -- worker --------------------------------------------------------------------------------------------------
    def start(self) -> None:
        """Start the background worker (no-op when disabled or already running)."""
        if not self.cfg.enabled or (self._thread is not None and self._thread.is_alive()):
            return
        self._stop.clear()
        self._thread = threading.Thread(target=self._work, name="online_adapter", daemon=True)
        self._thread.start()

    def _work(self) -> None:
        while not self._stop.is_set():
            try:
                result = self.step()
            except Exception:  # noqa: BLE001 - a failing update must not take inference down; it is logged
                log.exception("adaptation update failed")
                result = None
                self._stop.wait(1.0)
            self._stop.wait(0.05 if result is None else self.cfg.budget_wait(result.seconds))
            if self.cfg.state_dir and time.monotonic() - self._last_save >= self.cfg.save_every_s:
                self.save()

    def stop(self, save: bool = True) -> None:
        """Stop the worker (waits for the update in progress) and save when ``state_dir`` is set."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=30.0)
            self._thread = None
        if save and self.cfg.state_dir:
            self.save()

    # -- control -------------------------------------------------------------------------------------------------
    def reset(self) -> str:
        """Back to the source weights with a fresh optimizer and guard (the buffer is kept)."""
        with self._state_lock:
            self._restore(self.source)
            self.snapshot = clone_set(self.source)
            self.snapshot_stats = self.source_stats
            self.guard.reset()
            self.updates = 0
            version = self._publish(self.source, self.source_stats)
        return f"adaptation reset to the source weights (version {version})"

    def take_snapshot(self) -> str:
        """Make the current adapted weights the rollback point, and save the state when ``state_dir`` is set."""
        with self._state_lock:
            self.snapshot = clone_set(self.student)
            self.snapshot_stats = self._stats
            saved = self.save() if self.cfg.state_dir else None
        return f"snapshot at update {self.updates}" + (f", saved to {saved}" if saved else " (not persisted)")

    LIVE_SETTINGS = ("lr", "max_updates_per_s", "compute_share")

    def apply_live_settings(self, cfg: AdaptationConfig) -> None:
        """Take the new learning rate and budget from ``cfg`` (the other fields need a restart)."""
        with self._state_lock:
            self.cfg = dataclasses.replace(self.cfg, **{k: getattr(cfg, k) for k in self.LIVE_SETTINGS})
            for group in self.optimizer.param_groups:
                group["lr"] = self.cfg.lr

    def stats(self) -> dict[str, Any]:
        updates = self.updates  # read first: step() sets ``last`` before it counts, so a counted update has its result
        last = self.last
        return {"status": self.guard.status, "updates": updates, "loss": last.loss if last else float("nan"),
                "loss_ema": self.guard.loss_ema if self.guard.loss_ema is not None else float("nan"),
                "rollbacks": self.guard.rollbacks, "trips": self.guard.trips, "drift": self.guard.last_drift,
                "version": self.versions.applied_version, "updates_per_s": self.rate.rate_hz(),
                "buffered": len(self.buffer), "last_reason": "; ".join(self.guard.last_reasons)}

    # -- persistence ---------------------------------------------------------------------------------------------
    def state_tensors(self) -> dict[str, torch.Tensor]:
        tensors: dict[str, torch.Tensor] = {}
        for name in self.names:
            tensors[f"adapted/{name}"] = self.student[name].detach()
            tensors[f"teacher/{name}"] = self.teacher[name]
            tensors[f"snapshot/{name}"] = self.snapshot[name]
        if self.norm_stats is not None:                  # the BN statistics the weights were trained under
            for key in self.source_stats:
                # cloned: the two sets are often the same tensors (no update since the last snapshot), and a file
                # may not hold one tensor under two names
                tensors[f"stats/{key}"] = self._stats[key].clone()
                tensors[f"snapshot_stats/{key}"] = self.snapshot_stats[key].clone()
        return {**tensors, **optimizer_tensors(self.optimizer, self.student)}

    def save(self, state_dir: str | Path | None = None) -> Path:
        """Save weights, teacher, snapshot, optimizer, guard and buffer statistics atomically."""
        target = Path(state_dir or self.cfg.state_dir)
        with self._state_lock:
            meta = {"names": self.names, "updates": self.updates, "guard": self.guard.state_dict(),
                    "buffer": self.buffer.statistics(), "params": self.cfg.params,
                    "param_patterns": self.cfg.param_patterns, "saved_unix_s": time.time()}
            path = save_state(target, self.state_tensors(), meta, self.source_sha256)
        self._last_save = time.monotonic()
        return path

    def resume(self, state_dir: str | Path | None = None) -> ResumeResult:
        """Load a saved state if it was made for this source model and subset; says why when it does not."""
        target = Path(state_dir or self.cfg.state_dir)
        try:
            saved = load_state(target, self.source_sha256)
        except FileNotFoundError:
            return ResumeResult(False, f"no saved adaptation state in {target}: starting from the source weights")
        except StateMismatch as exc:
            return ResumeResult(False, f"{exc}; starting from the source weights")
        if saved.meta.get("names") != self.names:
            return ResumeResult(False, f"{saved.path}: saved for another parameter subset "
                                       f"({len(saved.meta.get('names', []))} vs {len(self.names)} tensors, params "
                                       f"{saved.meta.get('params')!r} vs {self.cfg.params!r}); starting from the "
                                       "source weights")
        t = saved.tensors
        with self._state_lock, torch.no_grad():
            copy_into(self.student, {n: t[f"adapted/{n}"] for n in self.names})
            self.teacher = {n: t[f"teacher/{n}"].to(self.device) for n in self.names}
            self.snapshot = {n: t[f"snapshot/{n}"].to(self.device) for n in self.names}
            restore_optimizer(self.optimizer, self.student, t)
            self.guard.load_state_dict(saved.meta.get("guard", {}))
            self.buffer.load_statistics(saved.meta.get("buffer", {}))
            self.updates = int(saved.meta.get("updates", 0))
            fallback = self.guard.status == FALLBACK_SOURCE
            if self.source_stats is not None:            # saved without statistics: the source's
                def stats_of(prefix: str) -> StatsSet:
                    found = {k: t[f"{prefix}/{k}"].to(self.device) for k in self.source_stats if f"{prefix}/{k}" in t}
                    return found if len(found) == len(self.source_stats) else self.source_stats
                self._stats, self.snapshot_stats = stats_of("stats"), stats_of("snapshot_stats")
            self._publish(self.source if fallback else self.student,
                          self.source_stats if fallback else self._stats, track=not fallback, fallback=fallback)
        return ResumeResult(True, f"resumed adaptation from {saved.path} at update {self.updates} "
                                  f"({self.guard.status})")
