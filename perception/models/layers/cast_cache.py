"""Weights kept in the autocast dtype between frames, for inference.

Under ``torch.autocast`` every ``nn.Linear`` call casts its fp32 weight to bf16 (CPU) or fp16 (CUDA) again: autocast's
own cache lives only inside one autocast region, and the pipeline opens one per frame. On the 2-core CPU the
dualstream_s encoder made 30 such casts a frame, 2.4 ms of its 17 ms (torch profiler, ``aten::_to_copy``), and each
cast is one more round trip through the interpreter lock, which the ROS node's other threads hold part of the time.

``cache_inference_casts(model)`` turns the model's ``nn.Linear`` modules into :class:`CastCachedLinear` (the class
is swapped in place: same parameters, same state dict, same training behaviour). At inference under autocast it keeps
the cast weight and bias and reuses them while the fp32 tensors are the same objects at the same version: any
in-place change (an adaptation swap, ``load_state_dict``, ``copy_``) bumps the version and the next call casts again,
so a cached weight is never stale. With autograd on, outside autocast, for non-fp32 weights or inside
``torch.compile`` (``runtime.compile``: tensors made during a CUDA-graph capture would live in memory that the next
replay overwrites) it is ``nn.Linear``.
"""

from __future__ import annotations

from typing import Callable

import torch
import torch.nn.functional as F
from torch import nn


def autocast_dtype(device_type: str) -> torch.dtype | None:
    """The dtype autocast casts matrix products to on ``device_type``, or None when autocast is off there."""
    if device_type not in ("cpu", "cuda") or not torch.is_autocast_enabled(device_type):
        return None
    return torch.get_autocast_dtype(device_type)


def cached_for(owner: nn.Module, tensors: tuple[torch.Tensor | None, ...], dtype: torch.dtype,
               make: Callable[[], tuple]) -> tuple:
    """``make()``'s value, kept on ``owner`` while ``tensors`` are the same objects (held by the cache, so their ids
    cannot be reused) at the same versions and ``dtype`` is the same; made outside inference mode (plain tensors,
    which ``copy.deepcopy`` of the module can take along) and never part of the state dict."""
    versions = (dtype, *(-1 if t is None else t._version for t in tensors))
    cached = owner.__dict__.get("_inference_cache")
    if cached is not None and cached[0] == versions and all(a is b for a, b in zip(cached[1], tensors)):
        return cached[2]
    with torch.inference_mode(False), torch.no_grad():
        value = make()
    owner.__dict__["_inference_cache"] = (versions, tensors, value)
    return value


class CastCachedLinear(nn.Linear):
    """``nn.Linear`` whose autocast weight cast is kept between calls (see the module docstring)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        dtype = autocast_dtype(x.device.type)
        if (dtype is None or torch.is_grad_enabled() or self.weight.dtype != torch.float32
                or torch.compiler.is_compiling()):  # a compiled graph casts (and fuses) on its own
            return super().forward(x)
        weight, bias = cached_for(self, (self.weight, self.bias), dtype, lambda: (
            self.weight.to(dtype), None if self.bias is None else self.bias.to(dtype)))
        return F.linear(x.to(dtype), weight, bias)


def cache_inference_casts(model: nn.Module) -> int:
    """Swap every plain ``nn.Linear`` of ``model`` for :class:`CastCachedLinear`; returns how many."""
    count = 0
    for module in model.modules():
        if type(module) is nn.Linear:
            module.__class__ = CastCachedLinear
            count += 1
    return count
