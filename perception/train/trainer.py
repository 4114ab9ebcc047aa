"""Offline self-supervised pretraining of a ``DualStreamEncoder`` (single process or torchrun data parallel).

One step: sample this process's clips (deterministic in ``(seed, step)``), run the student on every frame, build
the active terms of ``PretrainObjective``, back-propagate (autocast when ``run.precision`` is bf16/fp16), average
gradients over the ranks, clip the global norm, AdamW with a warmup + cosine learning rate, then the EMA teacher
update with a cosine momentum schedule (DINO, Caron et al. 2021). Every random draw of a step is seeded from
``(seed, step, rank)``, so a run resumed at step N continues the uninterrupted run's trajectory.

Outputs in ``out_dir`` (rank 0 only): ``config.yaml`` (resolved), ``train_log.csv`` (+ TensorBoard events when
the package is installed), ``checkpoints/last.*`` (resumable state), ``model.safetensors`` + ``model.json``
(the encoder checkpoint that ``load_checkpoint`` reads, with config and provenance).
"""

from __future__ import annotations

import copy
import csv
import logging
import math
import time
from contextlib import nullcontext
from pathlib import Path
from typing import Any, Callable

import torch
from torch import nn

from perception.config import config_to_dict, save_config
from perception.losses import create_teacher, effective_rank, feature_std, momentum_schedule, update_momentum
from perception.losses.schedules import warmup_cosine_schedule
from perception.models import create_encoder
from perception.models.checkpoint import load_checkpoint, load_state_checked, save_checkpoint
from perception.train.config import TrainConfig
from perception.train.data import ClipLoader
from perception.train.dinov2_init import load_global_init
from perception.train.distributed import (DistInfo, all_reduce_mean, average_gradients, broadcast_buffers,
                                         broadcast_module)
from perception.train.objective import TERMS, PretrainObjective
from perception.train.provenance import data_files, git_commit, hardware
from perception.train.state import load_train_state, save_train_state

log = logging.getLogger(__name__)
CSV_FIELDS = ["step", "lr", "momentum", "loss", *TERMS, "grad_norm", "feature_std", "effective_rank", "sec_per_step"]


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise ValueError("run.device=cuda but CUDA is not available")
    return torch.device(name)


def build_model(cfg: TrainConfig) -> tuple[nn.Module, list[str]]:
    """The student encoder (initialised as the config says) and notes on what was loaded."""
    notes: list[str] = []
    model = create_encoder(cfg.model.name, **cfg.model.overrides)
    if cfg.model.init_checkpoint:
        loaded, _ = load_checkpoint(cfg.model.init_checkpoint)
        load_state_checked(model, loaded.state_dict(), source=cfg.model.init_checkpoint)
        notes.append(f"weights from {cfg.model.init_checkpoint}")
    if cfg.model.global_init:
        notes += load_global_init(model, cfg.model.global_init)
        notes.append(f"global stream from {cfg.model.global_init}")
    frozen = 0
    for name, param in model.named_parameters():
        if any(name.startswith(prefix) for prefix in cfg.model.freeze):
            param.requires_grad_(False)
            frozen += param.numel()
    notes.append(f"frozen parameters: {frozen} ({', '.join(cfg.model.freeze) or 'none'})")
    return model, notes


@torch.no_grad()
def copy_buffers(student: nn.Module, teacher: nn.Module) -> None:
    """The teacher takes the student's batch-norm statistics as they are: an EMA of running statistics lags far
    behind the weights they belong to in a short run."""
    for (name, s), (_, t) in zip(student.named_buffers(), teacher.named_buffers()):
        t.copy_(s)


def _param_groups(model: nn.Module, weight_decay: float) -> list[dict]:
    decay = [p for n, p in model.named_parameters() if p.requires_grad and p.ndim > 1]
    no_decay = [p for n, p in model.named_parameters() if p.requires_grad and p.ndim <= 1]
    return [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]


class Trainer:
    """``Trainer(cfg, data_paths, out_dir, dist).fit(resume=False, progress=True) -> summary dict``."""

    def __init__(self, cfg: TrainConfig, data_paths: list[str], out_dir: str | Path, dist: DistInfo = DistInfo(),
                 on_step: Callable[[int, dict], None] | None = None) -> None:
        self.cfg, self.dist, self.on_step = cfg, dist, on_step
        self.out_dir = Path(out_dir)
        self.data_paths = [str(p) for p in data_paths]
        self.device = resolve_device(cfg.run.device)
        if self.device.type == "cuda":
            torch.backends.cudnn.benchmark = True  # fixed crop sizes: let cuDNN pick its fastest kernels
        if cfg.run.threads > 0:
            torch.set_num_threads(cfg.run.threads)
        torch.manual_seed(cfg.run.seed)
        self.student, self.notes = build_model(cfg)
        self.student.to(self.device)
        broadcast_module(self.student, dist)
        self.teacher = create_teacher(self.student)
        self.objective = PretrainObjective(cfg.loss, cfg.data.clip_len).to(self.device)
        self.params = [p for p in self.student.parameters() if p.requires_grad]
        self.optimizer = torch.optim.AdamW(_param_groups(self.student, cfg.optim.weight_decay), lr=cfg.optim.lr)
        self.loader = ClipLoader(self.data_paths, cfg.data, cfg.optim.batch_size, cfg.run.seed)
        self.step = 0
        self.total_steps = cfg.optim.steps  # shortened by fit_to_time() when run.fit_steps_to_time
        self._step_times: list[float] = []
        self._last_fit = 0  # step of the last fit_to_time (0: none yet)
        self.started = time.time()
        self.elapsed_before = 0.0
        self._tb: Any = None

    # schedules ------------------------------------------------------------------------------------------------
    def lr_at(self, step: int) -> float:
        o = self.cfg.optim
        return warmup_cosine_schedule(step, self.total_steps, o.lr, o.min_lr, o.warmup_steps)

    def momentum_at(self, step: int) -> float:
        return momentum_schedule(step, self.total_steps, self.cfg.optim.ema_momentum, self.cfg.optim.ema_final)

    def _autocast(self) -> Any:
        precision = self.cfg.run.precision
        if precision == "fp32":
            return nullcontext()
        dtype = torch.bfloat16 if precision == "bf16" else torch.float16
        if dtype == torch.float16 and self.device.type != "cuda":
            raise ValueError("run.precision=fp16 needs CUDA; use bf16 or fp32 on CPU")
        return torch.autocast(self.device.type, dtype=dtype)

    # one step -------------------------------------------------------------------------------------------------
    def train_step(self) -> dict[str, float]:
        step, cfg = self.step, self.cfg
        seed = cfg.run.seed * 1_000_003 + step * 101 + self.dist.rank
        torch.manual_seed(seed)
        generator = torch.Generator().manual_seed(seed)
        clip = self.loader.batch(step, self.dist.rank, self.dist.world_size)
        if self.device.type == "cuda":
            clip = clip.pin_memory().to(self.device, non_blocking=True)
        else:
            clip = clip.to(self.device)
        lr, momentum = self.lr_at(step), self.momentum_at(step)
        for group in self.optimizer.param_groups:
            group["lr"] = lr
        self.student.train()
        with self._autocast():
            total, parts, dense = self.objective(self.student, self.teacher, clip, generator)
        self.optimizer.zero_grad(set_to_none=True)
        total.backward()
        average_gradients(self.params, self.dist)
        grad_norm = torch.nn.utils.clip_grad_norm_(self.params, cfg.optim.clip_grad if cfg.optim.clip_grad > 0
                                                   else float("inf"))
        self.optimizer.step()
        broadcast_buffers(self.student, self.dist)
        update_momentum(self.student, self.teacher, momentum)
        copy_buffers(self.student, self.teacher)
        self.step += 1
        row: dict[str, float] = {"step": self.step, "lr": lr, "momentum": momentum,
                                 "loss": float(all_reduce_mean(total.detach(), self.dist)), "grad_norm": float(grad_norm)}
        row.update({k: float(all_reduce_mean(v, self.dist)) for k, v in parts.items()})
        if cfg.run.metrics_every and (self.step % cfg.run.metrics_every == 0 or self.step == 1):
            cells = dense.detach()[:, 0].float()
            row["feature_std"] = float(feature_std(cells))
            row["effective_rank"] = float(effective_rank(cells, center=True))
        return row

    # files ----------------------------------------------------------------------------------------------------
    def provenance(self) -> dict:
        return {"data": data_files(self.data_paths), "steps": self.step, "schedule_steps": self.total_steps,
                "seconds": self.elapsed(),
                "hardware": hardware(), "world_size": self.dist.world_size, "git": git_commit(),
                "notes": self.notes, "finished_unix": time.time()}

    def out_of_time(self) -> bool:
        """True once this run's wall time (this process since start) passes ``run.max_seconds`` on any rank (the
        flags are all-reduced, so every process stops at the same step)."""
        if self.cfg.run.max_seconds <= 0:
            return False
        over = torch.tensor(float(time.time() - self.started > self.cfg.run.max_seconds), device=self.device)
        return bool(all_reduce_mean(over, self.dist) > 0)

    def fit_to_time(self, seconds: float, probe: int = 20, skip: int = 2, margin: float = 0.95) -> None:
        """With ``run.fit_steps_to_time``: set the schedules' length to the steps that fit in ``margin`` of the rest
        of ``run.max_seconds``, at the speed of the steps since the last fit. The first fit comes at step ``probe``
        or once a tenth of the budget is spent (the first ``skip`` steps, with their warm-up, left out); each later
        fit when the step count has doubled. The learning rate and EMA momentum then finish their cosine inside the
        budget even when the speed changes."""
        run = self.cfg.run
        self._step_times.append(seconds)
        if not (run.fit_steps_to_time and run.max_seconds > 0) or self.step <= skip:
            return
        if self._last_fit == 0:
            due = self.step >= probe or time.time() - self.started >= 0.1 * run.max_seconds
            window = self._step_times[skip:]
        else:
            due = self.step >= 2 * self._last_fit
            window = self._step_times[self._last_fit:]
        if not due:
            return
        per_step = sum(window) / max(len(window), 1)
        per_step = float(all_reduce_mean(torch.tensor(per_step, device=self.device), self.dist))
        remaining = margin * run.max_seconds - (time.time() - self.started)
        fitting = self.step + int(max(remaining, 0.0) / max(per_step, 1e-6))
        self.total_steps = max(self.step + 1, self.cfg.optim.warmup_steps + 1, min(self.cfg.optim.steps, fitting))
        self._last_fit = self.step
        log.info("pretrain: %.3f s/step at step %d; schedules set to %d steps to fit run.max_seconds=%g", per_step,
                 self.step, self.total_steps, run.max_seconds)

    def elapsed(self) -> float:
        return self.elapsed_before + time.time() - self.started

    def save(self) -> None:
        if not self.dist.is_main:
            return
        meta = {"config": config_to_dict(self.cfg), "seconds": self.elapsed(), "data_paths": self.data_paths,
                "schedule_steps": self.total_steps}
        save_train_state(self.out_dir / "checkpoints" / "last", self.student, self.teacher, self.optimizer,
                         self.objective, self.step, meta)
        self.export(self.out_dir / "model")

    def export(self, path: Path) -> Path:
        """The encoder checkpoint (teacher or student weights, float32 or float16) with config and provenance."""
        source = self.teacher if self.cfg.run.export == "teacher" else self.student
        model = copy.deepcopy(source).to("cpu")
        if self.cfg.run.export_dtype == "float16":
            model = model.half()
        model.encoder_name, model.encoder_kwargs = self.student.encoder_name, dict(self.student.encoder_kwargs)
        return save_checkpoint(model, path, config_to_dict(self.cfg), self.provenance(),
                               self.cfg.model.correspondence_readout)

    def resume(self) -> None:
        meta = load_train_state(self.out_dir / "checkpoints" / "last", self.student, self.teacher, self.optimizer,
                                self.objective)
        self.step = int(meta["step"])
        self.total_steps = int(meta.get("schedule_steps", self.cfg.optim.steps))
        self.elapsed_before = float(meta.get("seconds", 0.0))
        log.info("resumed from %s at step %d", self.out_dir / "checkpoints" / "last", self.step)

    def _open_logs(self) -> tuple[Any, Any]:
        self.out_dir.mkdir(parents=True, exist_ok=True)
        save_config(self.cfg, self.out_dir / "config.yaml")
        path = self.out_dir / "train_log.csv"
        fresh = not path.exists() or self.step == 0
        handle = open(path, "w" if fresh else "a", newline="")
        writer = csv.DictWriter(handle, fieldnames=CSV_FIELDS, extrasaction="ignore")
        if fresh:
            writer.writeheader()
        if self.cfg.run.tensorboard:
            try:
                from torch.utils.tensorboard import SummaryWriter  # noqa: PLC0415 (optional dependency)
                self._tb = SummaryWriter(str(self.out_dir / "tensorboard"))
            except ImportError:
                self._tb = None
        return handle, writer

    def _log(self, row: dict[str, float], writer: Any, handle: Any) -> None:
        writer.writerow({k: (f"{v:.6g}" if isinstance(v, float) else v) for k, v in row.items()})
        handle.flush()
        if self._tb is not None:
            for key, value in row.items():
                if key != "step" and isinstance(value, float) and math.isfinite(value):
                    self._tb.add_scalar(f"train/{key}", value, int(row["step"]))

    def fit(self, resume: bool = False, progress: bool = True) -> dict[str, Any]:
        """Train up to ``optim.steps``; returns a summary (steps, seconds, last row, paths)."""
        if resume:
            self.resume()
        handle = writer = None
        if self.dist.is_main:
            handle, writer = self._open_logs()
        bar = None
        if progress and self.dist.is_main:
            from tqdm import tqdm  # noqa: PLC0415
            bar = tqdm(total=self.cfg.optim.steps, initial=self.step, desc="pretrain", dynamic_ncols=True)
        row: dict[str, float] = {}
        try:
            while self.step < self.total_steps:
                if self.out_of_time():
                    log.warning("pretrain: run.max_seconds=%g reached at step %d of %d; saving and stopping",
                                self.cfg.run.max_seconds, self.step, self.total_steps)
                    break
                tick = time.perf_counter()
                row = self.train_step()
                row["sec_per_step"] = time.perf_counter() - tick
                self.fit_to_time(row["sec_per_step"])
                if bar is not None and bar.total != self.total_steps:
                    bar.total = self.total_steps
                if not math.isfinite(row["loss"]):
                    raise FloatingPointError(f"pretrain: loss is {row['loss']} at step {self.step}: {row}")
                if self.on_step is not None:
                    self.on_step(self.step, row)
                if self.dist.is_main:
                    if self.step % self.cfg.run.log_every == 0 or "feature_std" in row or self.step == 1:
                        self._log(row, writer, handle)
                    if bar is not None:
                        bar.update(1)
                        bar.set_postfix(loss=f"{row['loss']:.4f}", lr=f"{row['lr']:.2e}")
                if self.step % self.cfg.run.checkpoint_every == 0 and self.step < self.total_steps:
                    self.save()
            self.save()
        finally:
            self.loader.close()
            if bar is not None:
                bar.close()
            if handle is not None:
                handle.close()
            if self._tb is not None:
                self._tb.close()
        return {"steps": self.step, "seconds": self.elapsed(), "last": row,
                "model": str(self.out_dir / "model.safetensors"), "out_dir": str(self.out_dir)}
