"""The weighted sum of self-supervised terms, where a term whose weight is 0 is never computed.

As in DINOv2's training wrapper, a term is switched off by its weight being 0; here the switch lives in one small
module so offline pretraining and online adaptation share it. Each term's inputs may be given lazily as a
zero-argument callable, so the work that only feeds a disabled term (a predictor pass, a second view) is skipped
too. All terms stay registered whatever their weight, so checkpoints have the same keys (e.g. DINO's centre).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, Union

import torch
from torch import nn

TermArgs = Union[tuple, list, Mapping[str, Any], torch.Tensor]
TermInput = Union[TermArgs, Callable[[], TermArgs]]


def _call(term: nn.Module, name: str, args: TermArgs) -> torch.Tensor:
    if isinstance(args, torch.Tensor):
        return term(args)
    if isinstance(args, Mapping):
        return term(**args)
    if isinstance(args, (tuple, list)):
        return term(*args)
    raise TypeError(f"SSLObjective: inputs for term {name!r} must be a tensor, tuple, dict or a callable returning "
                    f"one, got {type(args).__name__}")


class SSLObjective(nn.Module):
    """``forward(inputs: {name: args | () -> args}) -> (total, parts)``.

    terms: ``{name: loss module}``. weights: ``{name: float}`` for every term (0 turns a term off, negative is an
    error). ``args`` is a tensor, a tuple of positional arguments or a dict of keyword arguments for the term's
    forward. total: 0-dim tensor, ``sum(weight * loss)`` over active terms, with gradient. parts: ``{name:
    unweighted loss}`` for active terms only, detached (for logging).
    """

    def __init__(self, terms: Mapping[str, nn.Module], weights: Mapping[str, float]) -> None:
        super().__init__()
        if set(terms) != set(weights):
            raise ValueError(f"SSLObjective: terms and weights must name the same losses; terms without weight: "
                             f"{sorted(set(terms) - set(weights))}, weights without term: "
                             f"{sorted(set(weights) - set(terms))}")
        self.terms = nn.ModuleDict(dict(terms))
        self._weights: dict[str, float] = {}
        for name, w in weights.items():
            self.set_weight(name, w)

    @property
    def weights(self) -> dict[str, float]:
        return dict(self._weights)

    @property
    def active(self) -> list[str]:
        """Names of the terms with a non-zero weight, in registration order."""
        return [name for name in self.terms if self._weights[name] != 0.0]

    def set_weight(self, name: str, weight: float) -> None:
        """Change one weight (e.g. from a schedule); 0 switches the term off."""
        if name not in self.terms:
            raise KeyError(f"SSLObjective: no term {name!r}; terms are {list(self.terms)}")
        weight = float(weight)
        if not weight >= 0.0:
            raise ValueError(f"SSLObjective: weight of {name!r} must be >= 0, got {weight}")
        self._weights[name] = weight

    def forward(self, inputs: Mapping[str, TermInput]) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        unknown = set(inputs) - set(self.terms)
        if unknown:
            raise KeyError(f"SSLObjective: inputs for unknown terms {sorted(unknown)}; terms are {list(self.terms)}")
        total: torch.Tensor | None = None
        parts: dict[str, torch.Tensor] = {}
        for name in self.active:
            if name not in inputs:
                raise KeyError(f"SSLObjective: term {name!r} has weight {self._weights[name]} but no inputs were given")
            args = inputs[name]
            if callable(args) and not isinstance(args, (nn.Module, torch.Tensor)):
                args = args()
            value = _call(self.terms[name], name, args)
            parts[name] = value.detach()
            weighted = self._weights[name] * value
            total = weighted if total is None else total + weighted
        if total is None:
            total = torch.zeros(())
        return total, parts

    def extra_repr(self) -> str:
        return ", ".join(f"{k}={v:g}" for k, v in self._weights.items())
