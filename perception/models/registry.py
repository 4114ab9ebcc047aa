"""Encoders by name (the timm pattern): ``@register_encoder("name")`` on a factory, ``create_encoder(name,
**overrides)`` to build one, ``list_encoders()`` to see them. Unknown names and unknown overrides raise
``ValueError`` listing what is known. A created encoder remembers ``encoder_name`` and ``encoder_kwargs`` so a
checkpoint can rebuild it.
"""

from __future__ import annotations

import inspect
from typing import Any, Callable

from torch import nn

_REGISTRY: dict[str, Callable[..., nn.Module]] = {}


def register_encoder(name: str) -> Callable[[Callable[..., nn.Module]], Callable[..., nn.Module]]:
    """Decorator: register ``fn(**kwargs) -> encoder`` under ``name`` (names are unique)."""
    def wrap(fn: Callable[..., nn.Module]) -> Callable[..., nn.Module]:
        if name in _REGISTRY and _REGISTRY[name] is not fn:
            raise ValueError(f"encoder '{name}' is already registered by {_REGISTRY[name].__qualname__}")
        _REGISTRY[name] = fn
        return fn

    return wrap


def list_encoders() -> list[str]:
    """Registered encoder names, sorted."""
    return sorted(_REGISTRY)


def encoder_parameters(name: str) -> list[str]:
    """Keyword arguments that ``create_encoder(name, ...)`` accepts."""
    params = inspect.signature(_factory(name)).parameters.values()
    return [p.name for p in params if p.kind not in (p.VAR_KEYWORD, p.VAR_POSITIONAL)]


def _factory(name: str) -> Callable[..., nn.Module]:
    if name not in _REGISTRY:
        raise ValueError(f"unknown encoder '{name}'; known encoders: {', '.join(list_encoders()) or '(none)'}")
    return _REGISTRY[name]


def create_encoder(name: str, **overrides: Any) -> nn.Module:
    """Build the encoder registered as ``name`` with ``overrides`` for its factory's keyword arguments."""
    factory = _factory(name)
    accepted = encoder_parameters(name)
    unknown = sorted(set(overrides) - set(accepted))
    if unknown:
        raise ValueError(f"encoder '{name}': unknown option(s) {unknown}; accepted: {accepted}")
    model = factory(**overrides)
    model.encoder_name = name
    model.encoder_kwargs = dict(overrides)
    return model
