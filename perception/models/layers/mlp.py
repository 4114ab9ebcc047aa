"""Two-layer feed-forward network of a transformer block (Vaswani et al., 2017), named as DINOv2's ``Mlp``
(``mlp.fc1.*``, ``mlp.fc2.*``)."""

from __future__ import annotations

from typing import Callable

import torch
from torch import nn


class Mlp(nn.Module):
    """``(..., in_features)`` -> ``fc1`` -> activation -> ``fc2`` -> ``(..., out_features)``."""

    def __init__(
        self,
        in_features: int,
        hidden_features: int | None = None,
        out_features: int | None = None,
        act_layer: Callable[[], nn.Module] = nn.GELU,
        drop: float = 0.0,
        bias: bool = True,
    ) -> None:
        super().__init__()
        hidden_features = hidden_features or in_features
        out_features = out_features or in_features
        self.fc1 = nn.Linear(in_features, hidden_features, bias=bias)
        self.act = act_layer()
        self.fc2 = nn.Linear(hidden_features, out_features, bias=bias)
        self.drop = nn.Dropout(drop)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.drop(self.fc2(self.drop(self.act(self.fc1(x)))))
