"""LayerScale (Touvron et al., "Going deeper with Image Transformers" (CaiT), ICCV 2021): a learned per-channel
scale on each residual branch, initialised small. The parameter is ``gamma`` as in DINOv2 (``ls1.gamma``)."""

from __future__ import annotations

import torch
from torch import nn


class LayerScale(nn.Module):
    """``x * gamma`` with ``gamma`` of shape ``(dim,)`` initialised to ``init_values``."""

    def __init__(self, dim: int, init_values: float = 1e-5) -> None:
        super().__init__()
        self.gamma = nn.Parameter(torch.full((dim,), float(init_values)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.gamma
