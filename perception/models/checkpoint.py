"""Encoder checkpoints: weights in safetensors, a JSON file beside them for name, config and provenance.

``save_checkpoint(model, "out/model", config, provenance)`` writes ``out/model.safetensors`` and
``out/model.json``; each goes to a temporary file that is renamed into place (the weights first, so a JSON file
never points at weights that are not there). The JSON holds the registry name and the ``create_encoder`` options
the model was built with, so ``load_checkpoint`` rebuilds it; the SHA-256 of the weights file detects truncation
and tampering. No pickle anywhere (DESIGN.md, "Checkpoints and safety").
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load as st_load
from safetensors.torch import save as st_save
from torch import nn

from perception.io.atomic import atomic_write_bytes, write_json

FORMAT_VERSION = 1


class CheckpointError(ValueError):
    """A checkpoint is missing, damaged or does not fit the model; the message names the file or key."""


def checkpoint_paths(path: str | Path) -> tuple[Path, Path]:
    """``(weights, meta)`` paths of a checkpoint given with or without its ``.safetensors``/``.json`` suffix."""
    path = Path(path)
    if path.suffix in (".safetensors", ".json"):
        path = path.with_suffix("")
    return path.with_name(path.name + ".safetensors"), path.with_name(path.name + ".json")


def file_sha256(path: str | Path) -> str:
    """Hex SHA-256 of a file, read in 1 MiB blocks."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _jsonable(value: Any) -> Any:
    return json.loads(json.dumps(value, default=lambda v: list(v) if isinstance(v, tuple) else str(v)))


def save_checkpoint(model: nn.Module, path: str | Path, config: dict, provenance: dict,
                    correspondence_readout: str = "dense") -> Path:
    """Write ``<path>.safetensors`` and ``<path>.json``; returns the weights path. ``model`` must come from
    ``create_encoder`` (it carries ``encoder_name`` / ``encoder_kwargs``). ``correspondence_readout`` declares which
    map of the encoder's output serves dense correspondence (label propagation, tracking by features): the fused
    ``dense`` map or the ``local`` stream's map."""
    if correspondence_readout not in ("dense", "local"):
        raise CheckpointError(f"save_checkpoint: correspondence_readout must be 'dense' or 'local', "
                              f"got {correspondence_readout!r}")
    name = getattr(model, "encoder_name", None)
    if name is None:
        raise CheckpointError("save_checkpoint: model has no encoder_name; build it with create_encoder(name)")
    weights_path, meta_path = checkpoint_paths(path)
    tensors = {k: v.detach().to("cpu").contiguous() for k, v in model.state_dict().items()}
    data = st_save(tensors, metadata={"encoder_name": name, "format_version": str(FORMAT_VERSION)})
    atomic_write_bytes(weights_path, data)
    meta = {
        "format_version": FORMAT_VERSION,
        "name": name,
        "encoder_kwargs": _jsonable(getattr(model, "encoder_kwargs", {})),
        "correspondence_readout": correspondence_readout,
        "config": _jsonable(config),
        "provenance": _jsonable(provenance),
        "weights": weights_path.name,
        "sha256": hashlib.sha256(data).hexdigest(),
        "num_tensors": len(tensors),
    }
    write_json(meta_path, meta)
    return weights_path


def read_checkpoint_meta(path: str | Path) -> dict:
    """The JSON beside a checkpoint; errors name the file."""
    _, meta_path = checkpoint_paths(path)
    if not meta_path.is_file():
        raise CheckpointError(f"checkpoint metadata not found: {meta_path}")
    try:
        meta = json.loads(meta_path.read_text())
    except json.JSONDecodeError as exc:
        raise CheckpointError(f"checkpoint metadata {meta_path} is not valid JSON: {exc}") from exc
    for key in ("name", "sha256"):
        if key not in meta:
            raise CheckpointError(f"checkpoint metadata {meta_path} lacks the field '{key}'")
    return meta


def load_weights(path: str | Path, expected_sha256: str | None = None) -> dict[str, torch.Tensor]:
    """Read a safetensors file (checked against ``expected_sha256`` when given)."""
    weights_path, _ = checkpoint_paths(path)
    if not weights_path.is_file():
        raise CheckpointError(f"checkpoint weights not found: {weights_path}")
    data = weights_path.read_bytes()
    if expected_sha256 is not None and hashlib.sha256(data).hexdigest() != expected_sha256:
        raise CheckpointError(
            f"checkpoint weights {weights_path} ({len(data)} bytes) do not match the sha256 in their JSON: "
            "truncated or modified"
        )
    try:
        return st_load(data)
    except (SafetensorError, ValueError, RuntimeError) as exc:
        raise CheckpointError(f"checkpoint weights {weights_path} are not readable safetensors: {exc}") from exc


def load_state_checked(model: nn.Module, tensors: dict[str, torch.Tensor], source: str = "checkpoint") -> None:
    """``load_state_dict(strict=True)`` with an error listing missing, unexpected and mis-shaped keys."""
    own = model.state_dict()
    missing = sorted(set(own) - set(tensors))
    unexpected = sorted(set(tensors) - set(own))
    wrong = [
        f"{k}: {source} {tuple(tensors[k].shape)} vs model {tuple(own[k].shape)}"
        for k in sorted(set(own) & set(tensors))
        if tensors[k].shape != own[k].shape
    ]
    if missing or unexpected or wrong:
        parts = [f"missing keys: {missing[:20]}" if missing else "", f"unexpected keys: {unexpected[:20]}" if unexpected else ""]
        parts.append(f"shape mismatches: {'; '.join(wrong[:20])}" if wrong else "")
        raise CheckpointError(f"{source} does not fit the model: " + " | ".join(p for p in parts if p))
    model.load_state_dict(tensors, strict=True)


def load_checkpoint(path: str | Path, device: str | torch.device = "cpu") -> tuple[nn.Module, dict]:
    """Rebuild the encoder named in the JSON, load its weights (verified by SHA-256), return ``(model, meta)``."""
    from perception.models.registry import create_encoder

    weights_path, _ = checkpoint_paths(path)
    if not weights_path.is_file():
        raise CheckpointError(f"checkpoint weights not found: {weights_path}")
    meta = read_checkpoint_meta(path)
    tensors = load_weights(weights_path, meta["sha256"])
    try:
        model = create_encoder(meta["name"], **meta.get("encoder_kwargs", {}))
    except ValueError as exc:
        raise CheckpointError(f"checkpoint {weights_path}: cannot rebuild the encoder: {exc}") from exc
    load_state_checked(model, tensors, source=str(weights_path))
    return model.to(device).eval(), meta


def encoder_from_config(cfg: Any, device: str | torch.device = "cpu") -> tuple[nn.Module, dict | None]:
    """Build the encoder an ``EncoderConfig`` describes: from ``cfg.checkpoint`` when set (the checkpoint's own
    registry name and options win over ``cfg.name``), else ``create_encoder(cfg.name)`` with random weights.
    ``cfg.global_every`` / ``cfg.global_scale`` are applied either way. Returns ``(model, meta or None)``."""
    from perception.models.registry import create_encoder

    if cfg.checkpoint:
        model, meta = load_checkpoint(cfg.checkpoint, device)
    else:
        model, meta = create_encoder(cfg.name).to(device).eval(), None
    model.set_schedule(cfg.global_every, cfg.global_scale)
    return model, meta
