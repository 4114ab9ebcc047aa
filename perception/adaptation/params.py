"""Which parameters adapt, and plain-dict copies of them.

TENT (Wang et al. 2021) adapts only the affine parameters of normalisation layers; EATA (Niu et al. 2022) and
CoTTA (Wang et al. 2022) keep the same small subset for stability. ``select_parameters`` returns that subset by
module type (``"norm"``), optionally with adapter-like parameters (``"norm+adapters"``: names containing
``adapter``, ``lora`` or layer scales ``ls1``/``ls2``/``gamma``), plus any fnmatch ``patterns`` on parameter names.
The subset is an ordered ``{name: Parameter}`` dict; ``ParamSet`` (``{name: Tensor}``) is how it is copied around.
"""

from __future__ import annotations

import fnmatch
import hashlib
from collections.abc import Iterable, Mapping

import torch
from torch import nn

ParamSet = dict[str, torch.Tensor]

NORM_TYPES: tuple[type[nn.Module], ...] = (nn.LayerNorm, nn.GroupNorm, nn.BatchNorm1d, nn.BatchNorm2d,
                                            nn.BatchNorm3d, nn.InstanceNorm2d, nn.LocalResponseNorm)
ADAPTER_PATTERNS = ("*adapter*", "*lora*", "*.ls1.*", "*.ls2.*", "*.ls1", "*.ls2")


def _norm_names(model: nn.Module, first: int = -1) -> set[str]:
    """Parameter names of the normalisation layers (the first ``first`` of them in module order when >= 0)."""
    names: set[str] = set()
    count = 0
    for prefix, module in model.named_modules():
        if first >= 0 and count >= first:
            break
        if isinstance(module, NORM_TYPES) or type(module).__name__.endswith(("Norm", "Norm2d", "RMSNorm")):
            count += 1
            for pname, _ in module.named_parameters(recurse=False):
                names.add(f"{prefix}.{pname}" if prefix else pname)
    return names


def parse_patterns(text: str) -> list[str]:
    return [p.strip() for p in text.split(",") if p.strip()]


def select_parameters(model: nn.Module, choice: str = "norm", patterns: Iterable[str] = (),
                      first_norms: int = 1) -> dict[str, nn.Parameter]:
    """The adapted subset of ``model`` in ``named_parameters`` order; raises naming the choice when it is empty.

    ``"input"``: the input adapter (``input_adapter.*``) and the first ``first_norms`` normalisation layers (the
    stem's BN in a dualstream encoder): the parameters that act on the photometry of the input."""
    patterns = list(patterns)
    wanted: set[str] = set()
    all_names = [n for n, _ in model.named_parameters()]
    if choice in ("norm", "norm+adapters"):
        wanted |= _norm_names(model)
    if choice == "input":
        wanted |= _norm_names(model, first_norms)
        patterns.append("input_adapter.*")
    elif choice == "norm+adapters":
        patterns += list(ADAPTER_PATTERNS)
    elif choice not in ("norm", "patterns"):
        raise ValueError(f"select_parameters: unknown choice {choice!r} (input | norm | norm+adapters | patterns)")
    for pattern in patterns:
        wanted |= {n for n in all_names if fnmatch.fnmatchcase(n, pattern)}
    subset = {n: p for n, p in model.named_parameters() if n in wanted}
    if not subset:
        raise ValueError(f"select_parameters: choice {choice!r} with patterns {patterns} selects no parameter of "
                         f"{type(model).__name__}")
    return subset


def clone_set(params: Mapping[str, torch.Tensor]) -> ParamSet:
    """Detached copies (a complete, immutable-by-convention set)."""
    return {n: t.detach().clone() for n, t in params.items()}


@torch.no_grad()
def copy_into(params: Mapping[str, torch.Tensor], values: Mapping[str, torch.Tensor]) -> None:
    """``params[n].copy_(values[n])`` for every name; the names must match exactly."""
    if params.keys() != values.keys():
        missing = sorted(set(params) - set(values))[:3]
        extra = sorted(set(values) - set(params))[:3]
        raise KeyError(f"copy_into: parameter names differ (missing {missing}, unexpected {extra})")
    for name, p in params.items():
        p.copy_(values[name])


def sets_equal(a: Mapping[str, torch.Tensor], b: Mapping[str, torch.Tensor]) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[n], b[n].to(a[n].device)) for n in a)


def state_hash(tensors: Mapping[str, torch.Tensor]) -> str:
    """sha256 over the names, dtypes, shapes and bytes of ``tensors`` (sorted by name): a source model's identity
    when it has no checkpoint file."""
    digest = hashlib.sha256()
    for name in sorted(tensors):
        t = tensors[name].detach().cpu().contiguous().reshape(-1)
        digest.update(f"{name}|{t.dtype}|{tuple(t.shape)}|".encode())
        digest.update(t.view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    return digest.hexdigest()
