"""Typed configuration of self-supervised pretraining (``dualstream pretrain``).

Defaults live here; ``config/pretrain*.yaml`` override them and ``--set key=value`` overrides those, through
``perception.config.load_config(path, overrides, cls=TrainConfig)`` (unknown keys are errors naming the dotted
path). The resolved config is written beside every run and inside every checkpoint's JSON.

Loss weights (``loss.*``): a term whose weight is 0 is never computed (``SSLObjective``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

from perception.config import ConfigError, load_config


@dataclass
class ModelConfig:
    """The encoder to train: registry ``name`` plus ``create_encoder`` overrides (kept in the checkpoint, so the
    evaluation and the nodes rebuild the same variant). ``freeze``: parameter-name prefixes kept fixed."""

    name: str = "dualstream_s"
    overrides: dict = field(default_factory=dict)
    freeze: list[str] = field(default_factory=lambda: ["global_stream.vit."])
    global_init: str = ""  # official DINOv2 backbone (.pth / .safetensors) loaded into global_stream.vit
    init_checkpoint: str = ""  # a project checkpoint to start from (weights only)
    correspondence_readout: str = "dense"  # the map the checkpoint declares for correspondence: dense | local


@dataclass
class DataConfig:
    """Clips of ``clip_len`` frames ``gap`` apart (a gap drawn from ``gaps``, in frames), the same random crop of
    ``crop`` (h, w) pixels in every frame after resizing each frame by a factor drawn from ``scale``."""

    paths: list[str] = field(default_factory=list)
    clip_len: int = 4
    gaps: list[int] = field(default_factory=lambda: [1, 2, 4, 8])
    crop: list[int] = field(default_factory=lambda: [256, 256])
    scale: list[float] = field(default_factory=lambda: [0.8, 1.2])
    min_side: int = 160  # videos smaller than this (after scaling) are upscaled to it
    flip: bool = True
    jitter: int = 0  # per-frame crop shift, up to this many pixels in y and x
    cache_frames: bool = True  # decode every recording once into memory (else read_frames per clip)
    max_width: int = 0  # cached frames wider than this are shrunk to it first (0: keep)
    bag_topic: str = ""
    max_bag_frames: int = 2000
    workers: int = 0  # threads preparing clips ahead of the training step (0: in the step)
    prefetch: int = 2  # steps prepared ahead when workers > 0


@dataclass
class LossConfig:
    """Weights (0 switches a term off) and the parameters of each term."""

    crw: float = 1.0  # contrastive random walk over the clip (Jabri et al. 2020)
    colour: float = 1.0  # colour propagation between frames (Vondrick et al. 2018)
    patch_nce: float = 0.0  # patch InfoNCE between photometric views, teacher targets
    variance: float = 0.0  # VICReg variance/covariance on the dense cells
    crw_temperature: float = 0.07
    crw_pool: int = 2  # average-pool the dense map by this before the walk
    crw_edge_dropout: float = 0.1
    colour_temperature: float = 0.05
    colour_radius: int = 0  # 0: every cell of the reference frame; else a +-radius cell window
    colour_gaps: list[int] = field(default_factory=lambda: [1, 3])  # frame offsets inside the clip
    nce_temperature: float = 0.1


@dataclass
class OptimConfig:
    steps: int = 1000
    batch_size: int = 2  # clips per process and step
    lr: float = 1e-3
    min_lr: float = 1e-5
    warmup_steps: int = 50
    weight_decay: float = 0.04
    clip_grad: float = 1.0
    ema_momentum: float = 0.99
    ema_final: float = 0.999


@dataclass
class RunConfig:
    seed: int = 0
    precision: str = "fp32"  # fp32 | bf16 | fp16 (fp16 on CUDA only)
    device: str = "auto"  # auto | cpu | cuda
    threads: int = 0  # torch threads per process; 0 = leave torch's default
    log_every: int = 10
    checkpoint_every: int = 100
    metrics_every: int = 50  # collapse metrics (feature std, effective rank)
    export: str = "teacher"  # which weights model.safetensors holds: teacher (EMA) | student
    export_dtype: str = "float32"  # float32 | float16 (halves the file; loads into float32 models)
    tensorboard: bool = True  # used when the tensorboard package is installed
    max_seconds: float = 0.0  # wall-time budget: stop (and save) at the first step past it; 0 = none
    fit_steps_to_time: bool = False  # with max_seconds: after 20 steps, shorten the schedules to what fits in it


@dataclass
class TrainConfig:
    model: ModelConfig = field(default_factory=ModelConfig)
    data: DataConfig = field(default_factory=DataConfig)
    loss: LossConfig = field(default_factory=LossConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    run: RunConfig = field(default_factory=RunConfig)


def validate(cfg: TrainConfig) -> TrainConfig:
    """Range checks the types cannot express; errors name the key."""
    def need(ok: bool, key: str, expected: str, got: Any) -> None:
        if not ok:
            raise ConfigError(f"{key}: expected {expected}, got {got!r}")

    need(cfg.data.clip_len >= 2, "data.clip_len", ">= 2", cfg.data.clip_len)
    need(bool(cfg.data.gaps) and all(g >= 1 for g in cfg.data.gaps), "data.gaps", "positive integers", cfg.data.gaps)
    need(len(cfg.data.crop) == 2 and all(c >= 16 and c % 8 == 0 for c in cfg.data.crop), "data.crop",
         "[h, w], multiples of 8, >= 16", cfg.data.crop)
    need(len(cfg.data.scale) == 2 and 0 < cfg.data.scale[0] <= cfg.data.scale[1], "data.scale",
         "[lo, hi] with 0 < lo <= hi", cfg.data.scale)
    for name in ("crw", "colour", "patch_nce", "variance"):
        need(getattr(cfg.loss, name) >= 0, f"loss.{name}", ">= 0", getattr(cfg.loss, name))
    need(all(0 < g < cfg.data.clip_len for g in cfg.loss.colour_gaps), "loss.colour_gaps",
         f"offsets in [1, clip_len={cfg.data.clip_len})", cfg.loss.colour_gaps)
    need(cfg.optim.steps >= 1, "optim.steps", ">= 1", cfg.optim.steps)
    need(0 <= cfg.optim.warmup_steps < cfg.optim.steps, "optim.warmup_steps", f"in [0, steps={cfg.optim.steps})",
         cfg.optim.warmup_steps)
    need(cfg.data.workers >= 0, "data.workers", ">= 0", cfg.data.workers)
    need(cfg.run.max_seconds >= 0, "run.max_seconds", ">= 0 (0: no limit)", cfg.run.max_seconds)
    need(cfg.optim.batch_size >= 1, "optim.batch_size", ">= 1", cfg.optim.batch_size)
    need(cfg.model.correspondence_readout in ("dense", "local"), "model.correspondence_readout", "dense | local",
         cfg.model.correspondence_readout)
    need(cfg.run.precision in ("fp32", "bf16", "fp16"), "run.precision", "fp32 | bf16 | fp16", cfg.run.precision)
    need(cfg.run.device in ("auto", "cpu", "cuda"), "run.device", "auto | cpu | cuda", cfg.run.device)
    need(cfg.run.export in ("teacher", "student"), "run.export", "teacher | student", cfg.run.export)
    need(cfg.run.export_dtype in ("float32", "float16"), "run.export_dtype", "float32 | float16",
         cfg.run.export_dtype)
    return cfg


def load_train_config(path: str | Path | None = None, overrides: Sequence[str] = ()) -> TrainConfig:
    """Defaults <- YAML at ``path`` <- ``overrides`` (``"optim.lr=3e-4"``), validated."""
    return validate(load_config(path, overrides, cls=TrainConfig))
