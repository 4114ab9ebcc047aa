"""Resumable training state in safetensors: student, EMA teacher and AdamW moments in one file, the step, config
and provenance in the JSON beside it (``DIR/checkpoints/last.safetensors`` + ``last.json``).

Tensor keys: ``student.<param>``, ``teacher.<param>``, ``optim.<i>.<exp_avg|exp_avg_sq|step>`` (``i`` the index
of the parameter in the optimizer), ``objective.<buffer>``. Both files are written atomically (weights first).
No pickle: the optimizer's hyper-parameters travel as JSON.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load as st_load
from safetensors.torch import save as st_save
from torch import nn

from perception.io.atomic import atomic_write_bytes, write_json
from perception.models.checkpoint import CheckpointError, load_state_checked


def _prefixed(prefix: str, tensors: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    return {f"{prefix}.{k}": v.detach().to("cpu").contiguous() for k, v in tensors.items()}


def _strip(prefix: str, tensors: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    head = prefix + "."
    return {k[len(head):]: v for k, v in tensors.items() if k.startswith(head)}


def optimizer_tensors(optimizer: torch.optim.Optimizer) -> tuple[dict[str, torch.Tensor], list[dict]]:
    """(flat tensors of the per-parameter state, JSON-able param groups)."""
    sd = optimizer.state_dict()
    tensors = {}
    for index, state in sd["state"].items():
        for key, value in state.items():
            tensors[f"{index}.{key}"] = torch.as_tensor(value)
    return tensors, json.loads(json.dumps(sd["param_groups"]))


def restore_optimizer(optimizer: torch.optim.Optimizer, tensors: dict[str, torch.Tensor], groups: list[dict]) -> None:
    state: dict[int, dict[str, torch.Tensor]] = {}
    for key, value in tensors.items():
        index, name = key.split(".", 1)
        state.setdefault(int(index), {})[name] = value
    optimizer.load_state_dict({"state": state, "param_groups": groups})


def save_train_state(path: Path, student: nn.Module, teacher: nn.Module, optimizer: torch.optim.Optimizer,
                     objective: nn.Module, step: int, meta: dict[str, Any]) -> Path:
    """Write ``path.safetensors`` and ``path.json``; ``step`` is the number of completed steps."""
    optim_tensors, groups = optimizer_tensors(optimizer)
    tensors = {**_prefixed("student", student.state_dict()), **_prefixed("teacher", teacher.state_dict()),
               **_prefixed("optim", optim_tensors), **_prefixed("objective", objective.state_dict())}
    data = st_save(tensors)
    weights = path.with_name(path.name + ".safetensors")
    atomic_write_bytes(weights, data)
    write_json(path.with_name(path.name + ".json"), {**meta, "step": int(step), "param_groups": groups,
                                                     "sha256": hashlib.sha256(data).hexdigest()})
    return weights


def load_train_state(path: Path, student: nn.Module, teacher: nn.Module, optimizer: torch.optim.Optimizer,
                     objective: nn.Module) -> dict[str, Any]:
    """Restore everything written by ``save_train_state``; returns the JSON (``step`` = completed steps)."""
    weights, meta_path = path.with_name(path.name + ".safetensors"), path.with_name(path.name + ".json")
    if not weights.is_file() or not meta_path.is_file():
        raise CheckpointError(f"resume: no training state at {weights} / {meta_path}")
    meta = json.loads(meta_path.read_text())
    data = weights.read_bytes()
    if hashlib.sha256(data).hexdigest() != meta.get("sha256"):
        raise CheckpointError(f"resume: {weights} does not match the sha256 in {meta_path} (truncated or modified)")
    tensors = st_load(data)
    load_state_checked(student, _strip("student", tensors), source=f"{weights} (student)")
    load_state_checked(teacher, _strip("teacher", tensors), source=f"{weights} (teacher)")
    objective.load_state_dict(_strip("objective", tensors), strict=True)
    restore_optimizer(optimizer, _strip("optim", tensors), meta["param_groups"])
    return meta
