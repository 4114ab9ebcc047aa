"""Which encoder weights the runtime uses, in order:

1. ``encoder.checkpoint`` when set (a ``.safetensors`` path with its JSON beside it; errors name the file);
2. the shipped default ``models/<encoder.name>.safetensors`` when present (looked up beside the package in a
   source checkout, then under ``<prefix>/share/dualstream_perception/models`` for an installed package);
3. otherwise the registry's architecture with a seeded random initialisation, and a logged warning saying that
   outputs are not meaningful features.

The streaming settings ``global_every``, ``global_scale``, ``global_stages`` and ``global_start_scale``, and the
fusion's ``query_pool`` (no parameter depends on any of them), are inference-time choices, so the config's values
are applied to the loaded model whatever the checkpoint was trained with.
"""

from __future__ import annotations

import logging
import sys
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from perception.config import ConfigError, EncoderConfig

log = logging.getLogger(__name__)

PACKAGE = "dualstream_perception"


@dataclass
class LoadedEncoder:
    model: nn.Module
    source: str  # "checkpoint", "default", or "random"
    path: str  # the weights file ("" when random)


def default_checkpoint(name: str) -> Path | None:
    """The shipped ``models/<name>.safetensors`` (with its JSON), or None when it is not there."""
    root = Path(__file__).resolve().parents[2]
    for folder in (root / "models", Path(sys.prefix) / "share" / PACKAGE / "models"):
        weights = folder / f"{name}.safetensors"
        if weights.is_file() and weights.with_suffix(".json").is_file():
            return weights
    return None


def load_encoder(cfg: EncoderConfig, device: torch.device | str = "cpu", seed: int = 0) -> LoadedEncoder:
    """Build the encoder ``cfg`` describes, on ``device``, in eval mode."""
    from perception.models import create_encoder  # noqa: PLC0415 (registers the built-in encoders)
    from perception.models.checkpoint import load_checkpoint  # noqa: PLC0415
    from perception.models.layers.cast_cache import cache_inference_casts  # noqa: PLC0415

    if cfg.checkpoint:
        model, meta = load_checkpoint(cfg.checkpoint)
        loaded = LoadedEncoder(model, "checkpoint", str(cfg.checkpoint))
        if meta.get("name") != cfg.name:
            log.info("encoder.checkpoint %s holds '%s' (encoder.name '%s' is ignored)", cfg.checkpoint,
                     meta.get("name"), cfg.name)
    elif (path := default_checkpoint(cfg.name)) is not None:
        model, _ = load_checkpoint(path)
        loaded = LoadedEncoder(model, "default", str(path))
    else:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            try:
                model = create_encoder(cfg.name, global_every=cfg.global_every, global_scale=cfg.global_scale)
            except ValueError as exc:
                raise ConfigError(f"encoder.name '{cfg.name}': {exc}") from exc
        log.warning("encoder '%s': no checkpoint given and no shipped models/%s.safetensors; using RANDOM "
                    "weights (seed %d): features and detections will not be meaningful", cfg.name, cfg.name, seed)
        loaded = LoadedEncoder(model, "random", "")
    apply_streaming_settings(loaded.model, cfg)
    cache_inference_casts(loaded.model)  # autocast's weight casts kept between frames (layers/cast_cache.py)
    loaded.model.to(device).eval()
    return loaded


def apply_streaming_settings(model: nn.Module, cfg: EncoderConfig) -> None:
    """Set keyframe interval, global-stream scale, stages and first-frame scale, and the fusion's query pooling (when
    not 0) from the config, validated as the encoder does."""
    stages = int(getattr(cfg, "global_stages", 1))
    pool = int(getattr(cfg, "fusion_query_pool", 0))
    if pool and hasattr(getattr(model, "fusion", None), "query_pool"):
        model.fusion.query_pool = pool  # no parameter depends on it: an inference-time setting like the schedule
    if hasattr(model, "set_schedule"):
        try:
            model.set_schedule(cfg.global_every, cfg.global_scale, stages,
                               float(getattr(cfg, "global_start_scale", 0.0)))
        except ValueError as exc:
            raise ValueError(f"encoder: {exc}") from exc
        return
    if cfg.global_every < 1:
        raise ValueError(f"encoder.global_every must be >= 1, got {cfg.global_every}")
    if not 0.0 < cfg.global_scale <= 4.0:
        raise ValueError(f"encoder.global_scale must be in (0, 4], got {cfg.global_scale}")
    if hasattr(model, "global_every"):
        model.global_every = int(cfg.global_every)
    if hasattr(model, "global_scale"):
        model.global_scale = float(cfg.global_scale)
