"""Losses run in float32 even inside ``torch.autocast``: softmax over small temperatures, log of round-trip
probabilities and covariance sums lose too much in bf16/fp16 (the practice of DINO's and iBOT's code, which
compute their losses on ``.float()`` logits). Models (heads, predictors) stay under autocast."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import TypeVar

import torch

_Fn = TypeVar("_Fn", bound=Callable)

_DEVICE_TYPES = ("cpu", "cuda")


def float32_loss(fn: _Fn) -> _Fn:
    """Decorator: run ``fn`` with autocast disabled on CPU and CUDA (inputs are cast with ``.float()`` inside)."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):  # type: ignore[no-untyped-def]
        active = [d for d in _DEVICE_TYPES if torch.is_autocast_enabled(d)]
        if not active:
            return fn(*args, **kwargs)
        contexts = [torch.autocast(device_type=d, enabled=False) for d in active]
        for ctx in contexts:
            ctx.__enter__()
        try:
            return fn(*args, **kwargs)
        finally:
            for ctx in reversed(contexts):
                ctx.__exit__(None, None, None)

    return wrapper  # type: ignore[return-value]
