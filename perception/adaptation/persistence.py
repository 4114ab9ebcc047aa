"""Crash-safe saving of the adapter's state: safetensors for tensors, JSON for everything else.

Layout in ``state_dir``: ``adapted.json`` (the manifest) and ``weights-<sha12>.safetensors``. A save writes the new
weights file under a new name (temporary file, fsync, rename), then replaces the manifest the same way, then
deletes weight files the manifest no longer names (and temporary files a killed writer left). The manifest holds
the sha256 of the weights file it names, so a reader gets either the old pair or the new pair, both complete and
agreeing, whenever the writer is killed (``kill -9`` included): the rename of the manifest is the commit point.
``load_state`` checks that sha256 and the source model's hash (``source_sha256``) and says why it refuses.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import torch
from safetensors.torch import load as st_load
from safetensors.torch import save as st_save

from perception.io.atomic import atomic_write_bytes, write_json

MANIFEST = "adapted.json"
FORMAT = "dualstream-adapter/1"


class StateMismatch(ValueError):
    """A saved state exists but cannot be used (other source model, other subset, damaged file)."""


@dataclass
class SavedState:
    tensors: dict[str, torch.Tensor]
    meta: dict
    path: Path


def save_state(state_dir: str | Path, tensors: dict[str, torch.Tensor], meta: dict, source_sha256: str) -> Path:
    """Write ``tensors`` + ``meta`` (JSON-able) as the new state of ``state_dir``; returns the manifest path."""
    state_dir = Path(state_dir)
    data = st_save({k: v.detach().cpu().contiguous() for k, v in tensors.items()})
    digest = hashlib.sha256(data).hexdigest()
    name = f"weights-{digest[:12]}.safetensors"
    atomic_write_bytes(state_dir / name, data)
    manifest = {"format": FORMAT, "source_sha256": source_sha256, "weights": name, "weights_sha256": digest,
                **meta}
    path = write_json(state_dir / MANIFEST, manifest)
    stale = [p for p in state_dir.glob("weights-*.safetensors") if p.name != name]
    stale += list(state_dir.glob(".weights-*.tmp")) + list(state_dir.glob(f".{MANIFEST}.*.tmp"))  # killed writers
    for old in stale:
        try:
            old.unlink()
        except FileNotFoundError:
            pass
    return path


def optimizer_tensors(optimizer: torch.optim.Optimizer, params: Mapping[str, torch.Tensor]
                      ) -> dict[str, torch.Tensor]:
    """The optimizer's per-parameter tensors (Adam moments, step) keyed ``optim/<param name>/<key>``."""
    out = {}
    for name, p in params.items():
        for key, value in optimizer.state.get(p, {}).items():
            if isinstance(value, torch.Tensor):
                out[f"optim/{name}/{key}"] = value
    return out


def restore_optimizer(optimizer: torch.optim.Optimizer, params: Mapping[str, torch.Tensor],
                      tensors: Mapping[str, torch.Tensor]) -> None:
    """The inverse of ``optimizer_tensors`` (a parameter without saved entries starts fresh)."""
    optimizer.state.clear()
    for name, p in params.items():
        prefix = f"optim/{name}/"
        entries = {k[len(prefix):]: v.to(p.device) for k, v in tensors.items() if k.startswith(prefix)}
        if "step" in entries:
            entries["step"] = entries["step"].cpu()  # Adam keeps its step on the CPU unless capturable
        if entries:
            optimizer.state[p] = entries


def load_state(state_dir: str | Path, source_sha256: str | None = None) -> SavedState:
    """The saved state; ``FileNotFoundError`` when there is none, ``StateMismatch`` naming why it is unusable."""
    state_dir = Path(state_dir)
    path = state_dir / MANIFEST
    try:
        meta = json.loads(path.read_text())
    except FileNotFoundError:
        raise
    except (OSError, json.JSONDecodeError) as exc:
        raise StateMismatch(f"{path}: unreadable manifest ({exc})") from exc
    if meta.get("format") != FORMAT:
        raise StateMismatch(f"{path}: format {meta.get('format')!r}, expected {FORMAT!r}")
    if source_sha256 is not None and meta.get("source_sha256") != source_sha256:
        raise StateMismatch(f"{path}: saved for source model sha256 {str(meta.get('source_sha256'))[:12]}..., "
                            f"the running source is {source_sha256[:12]}...: not resuming")
    weights = state_dir / os.path.basename(str(meta.get("weights", "")))
    try:
        data = weights.read_bytes()
    except OSError as exc:
        raise StateMismatch(f"{path}: weights file {weights.name} unreadable ({exc})") from exc
    digest = hashlib.sha256(data).hexdigest()
    if digest != meta.get("weights_sha256"):
        raise StateMismatch(f"{weights}: sha256 {digest[:12]}... does not match the manifest's "
                            f"{str(meta.get('weights_sha256'))[:12]}...")
    return SavedState(tensors=st_load(data), meta=meta, path=path)
