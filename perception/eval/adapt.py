"""The online-adaptation benchmark: does adapting on the stream recover what a photometric shift costs?

Each shift of ``perception.eval.shifts`` is applied to every frame of the real videos, streamed once in order, and
each method serves the same shifted stream with its own copy of the source model:

| method | what adapts on the stream |
|---|---|
| ``frozen`` | nothing (the source model) |
| ``norm_stats`` | BN running statistics only (``NormStatsTracker``; Schneider et al. 2020) |
| ``adapted`` | ``OnlineAdapter`` with the given ``AdaptationConfig`` (statistics + affine/adapter parameters), guarded |
| ``adapted_unguarded`` | the same without its guard (no threshold can trip) |
| ``unstable`` | the same guarded adapter at ``lr x unstable_lr_factor`` (100): the guard must catch it |

Updates are synchronous, one every ``update_every`` frames, so a run is deterministic (the node runs the same update
in a background worker under a time budget). The task's score of each (shift, method) is its J&F on DAVIS label
propagation (``perception.eval.propagate``; ``scale`` < 1 resizes frames and the window radius for speed) or its
AP50 on a MOT15 sequence with the few-shot person head fitted once on clean frames by the frozen model
(``perception.eval.detect``). ``measure_fps`` times inference with the background worker on against off.
"""

from __future__ import annotations

import copy
import dataclasses
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import nn

from perception.adaptation import AdaptationConfig, OnlineAdapter
from perception.adaptation.norm_stats import NormStatsTracker
from perception.eval.shifts import apply_shift

METHODS = ("frozen", "adapted", "adapted_unguarded", "norm_stats", "unstable")
ADAPTIVE = ("adapted", "adapted_unguarded", "unstable")
Log = Callable[[str], None]


@dataclass
class AdaptSettings:
    """How the adaptive methods run on the stream."""

    cfg: AdaptationConfig = field(default_factory=lambda: AdaptationConfig(enabled=True))
    update_every: int = 2             # one synchronous update every N frames
    unstable_lr_factor: float = 100.0
    bf16: bool = True                 # inference under bfloat16 autocast (updates run in fp32)


def method_config(method: str, settings: AdaptSettings) -> AdaptationConfig:
    """The ``AdaptationConfig`` of an adaptive method (``adapted``, ``adapted_unguarded``, ``unstable``)."""
    cfg = dataclasses.replace(settings.cfg, enabled=True)
    if method == "adapted_unguarded":
        return dataclasses.replace(cfg, std_ratio_min=0.0, rank_ratio_min=0.0, drift_max=math.inf,
                                   loss_rise_factor=math.inf)
    if method == "unstable":
        return dataclasses.replace(cfg, lr=cfg.lr * settings.unstable_lr_factor)
    if method != "adapted":
        raise ValueError(f"method_config: {method!r} is not adaptive (one of {ADAPTIVE})")
    return cfg


class StreamModel:
    """One method's model on one stream: ``encode(x (1, 3, H, W) in [0, 1]) -> EncoderOutput``, state carried."""

    def __init__(self, source: nn.Module, method: str, settings: AdaptSettings) -> None:
        if method not in METHODS:
            raise ValueError(f"unknown method {method!r} (known: {', '.join(METHODS)})")
        self.method, self.settings = method, settings
        self.model = copy.deepcopy(source).eval()
        self.adapter: OnlineAdapter | None = None
        self.tracker: NormStatsTracker | None = None
        if method in ADAPTIVE:
            self.adapter = OnlineAdapter(self.model, method_config(method, settings))
        elif method == "norm_stats":
            self.tracker = NormStatsTracker(self.model, settings.cfg.norm_stats_momentum or 0.05)
        self.state: Any = None
        self.frames = 0
        self.update_seconds = 0.0

    def reset_state(self) -> None:
        """A new sequence: forget the streaming state (what was adapted is kept)."""
        self.state = None

    def encode(self, x: torch.Tensor) -> Any:
        adapter = self.adapter
        if adapter is not None:
            adapter.before_frame()
        if self.tracker is not None:
            self.tracker.begin_frame()                  # the previous frame's statistics, at the frame boundary
        with torch.inference_mode(), torch.autocast("cpu", dtype=torch.bfloat16, enabled=self.settings.bf16):
            output, self.state = self.model.encode(x, self.state)
        self.frames += 1
        if adapter is not None:
            adapter.after_frame(x)
            if self.frames % self.settings.update_every == 0:
                started = time.perf_counter()
                adapter.step()
                self.update_seconds += time.perf_counter() - started
        return output

    @property
    def serving_source(self) -> bool:
        """True while an adaptive method's guard has fallen back to the source model (``OnlineAdapter.serving_source``,
        as of the last ``encode``): the stream is then served exactly as ``frozen``, the detector's frame calibration
        included (``sync_calibration``)."""
        return self.adapter is not None and self.adapter.serving_source

    def guard_summary(self) -> dict[str, Any]:
        if self.adapter is None:
            return {"rollbacks": 0, "trips": 0, "updates": 0, "status": "none"}
        g = self.adapter.guard
        return {"rollbacks": g.rollbacks, "trips": g.trips, "updates": self.adapter.updates, "status": g.status,
                "last_reason": "; ".join(g.last_reasons), "update_s": round(self.update_seconds, 2)}


def to_tensor(image: np.ndarray) -> torch.Tensor:
    """``(H, W, 3)`` uint8 RGB -> ``(1, 3, H, W)`` float in [0, 1]."""
    return torch.from_numpy(np.ascontiguousarray(image)).permute(2, 0, 1)[None].float().div_(255.0)


def summarise(shifts: dict[str, dict[str, float]], guard: dict[str, dict[str, Any]],
              fps: dict[str, float] | None) -> dict[str, Any]:
    """The issue's bars from the scores of one run (``None`` where the run lacks what a bar needs)."""
    out: dict[str, Any] = {}
    shifted = [s for s in shifts if s != "none"]
    if "none" in shifts and shifted:
        clean = shifts["none"]["frozen"]
        cost = {s: clean - shifts[s]["frozen"] for s in shifted}
        gain = {s: shifts[s]["adapted"] - shifts[s]["frozen"] for s in shifted}
        mean_cost = float(np.mean(list(cost.values())))
        out["shift_cost"] = {s: round(v, 4) for s, v in cost.items()}
        out["adapted_gain"] = {s: round(v, 4) for s, v in gain.items()}
        out["recovered_fraction"] = (round(float(np.mean(list(gain.values()))) / mean_cost, 4)
                                     if mean_cost > 1e-9 else None)
        out["recovers_half"] = bool(out["recovered_fraction"] is not None and out["recovered_fraction"] >= 0.5)
    if shifted:
        adapted = float(np.mean([shifts[s]["adapted"] for s in shifted]))
        norm = float(np.mean([shifts[s]["norm_stats"] for s in shifted]))
        out["adapted_minus_norm_stats"] = round(adapted - norm, 4)
        out["beats_norm_stats"] = adapted > norm
    if "none" in shifts:
        out["none_adapted_minus_frozen"] = round(shifts["none"]["adapted"] - shifts["none"]["frozen"], 4)
        out["none_within_0.01"] = out["none_adapted_minus_frozen"] >= -0.01
    gaps = [abs(shifts[s]["unstable"] - shifts[s]["frozen"]) for s in shifts]
    out["unstable_max_gap_to_frozen"] = round(max(gaps), 4)
    # one-sided: how far below frozen unstable ever lands (a shift whose exposure band the adapter never leaves
    # leaves nothing to catch, and unstable then equals adapted, which may sit above frozen)
    out["unstable_max_drop_below_frozen"] = round(max(max(shifts[s]["frozen"] - shifts[s]["unstable"] for s in shifts),
                                                      0.0), 4)
    out["unstable_caught"] = guard["unstable"]["rollbacks"] + guard["unstable"]["trips"] > 0
    out["unstable_within_0.02"] = out["unstable_max_gap_to_frozen"] <= 0.02
    if fps is not None:
        out["fps_ratio"] = fps["ratio"]
        out["fps_at_least_0.8"] = fps["ratio"] >= 0.8
    return out


def merge_guard(per_shift: dict[str, dict[str, dict[str, Any]]]) -> dict[str, dict[str, Any]]:
    """``guard.<method>``: rollbacks, trips and updates summed over shifts, and the statuses seen."""
    merged: dict[str, dict[str, Any]] = {}
    for entries in per_shift.values():
        for method, g in entries.items():
            m = merged.setdefault(method, {"rollbacks": 0, "trips": 0, "updates": 0, "statuses": []})
            for key in ("rollbacks", "trips", "updates"):
                m[key] += int(g[key])
            if g["status"] not in m["statuses"]:
                m["statuses"].append(g["status"])
    return merged


def measure_fps(source: nn.Module, frames: list[np.ndarray], settings: AdaptSettings, seconds: float = 6.0,
                log: Log = print, rounds: int = 3) -> dict[str, float]:
    """Inference frames/s without and with the adapter's background worker (under its configured budget), each
    cycling through ``frames``. The two alternate in ``rounds`` pairs of ``seconds / rounds`` each (off, on, off,
    on, ...), after two untimed warm-up frames per run, so a machine whose speed drifts during the measurement (other
    jobs, clock changes) moves both alike; each side's fps is its frames over its time, summed over the rounds. The
    worker starts with a full buffer."""
    tensors = [to_tensor(f) for f in frames]
    share = seconds / max(1, rounds)

    def run(adapt: bool) -> tuple[int, float, int]:
        model = copy.deepcopy(source).eval()
        adapter = OnlineAdapter(model, method_config("adapted", settings)) if adapt else None
        state = None
        if adapter is not None:
            for i in range(adapter.cfg.buffer_size):
                adapter.after_frame(frames[i % len(frames)])
            adapter.start()
        count, started = -2, 0.0
        try:
            while count < 0 or time.perf_counter() - started < share:
                x = tensors[(count + 2) % len(tensors)]
                if adapter is not None:
                    adapter.before_frame()
                with torch.inference_mode(), torch.autocast("cpu", dtype=torch.bfloat16, enabled=settings.bf16):
                    _, state = model.encode(x, state)
                if adapter is not None:
                    adapter.after_frame(frames[(count + 2) % len(frames)])  # the uint8 frame, as the perceiver does
                count += 1
                if count == 0:
                    started = time.perf_counter()
            elapsed = time.perf_counter() - started
        finally:
            if adapter is not None:
                adapter.stop(save=False)
        return count, elapsed, (adapter.updates if adapter is not None else 0)

    totals = {False: [0, 0.0], True: [0, 0.0]}
    updates = 0
    for _ in range(max(1, rounds)):
        for adapt in (False, True):
            count, elapsed, done = run(adapt)
            totals[adapt][0] += count
            totals[adapt][1] += elapsed
            updates += done
    off, on = (totals[a][0] / totals[a][1] for a in (False, True))
    log(f"[eval adapt] fps adaptation off {off:.2f}, on {on:.2f} ({max(1, rounds)} alternating rounds of "
        f"{share:.1f} s each, {updates} background updates)")
    return {"adaptation_off": round(off, 3), "adaptation_on": round(on, 3), "ratio": round(on / off, 4),
            "seconds_each": seconds, "rounds": max(1, rounds), "background_updates": updates,
            "threads": torch.get_num_threads()}


def shifted(frames: list[np.ndarray], shift: str, offset: int = 0) -> list[np.ndarray]:
    """The frames under ``shift`` (noise seeded by the frame's index)."""
    return [apply_shift(shift, f, offset + i) for i, f in enumerate(frames)]
