"""Projection head for self-distillation: MLP, L2-normalised bottleneck, weight-normalised prototype layer.

As in DINO (Caron et al. 2021, Sec. 3.1 and App.): ``n_layers`` linear layers with GELU (optionally batch
norm) down to a ``bottleneck_dim`` embedding, L2 normalisation, then a weight-normalised linear layer without
bias onto ``out_dim`` prototypes whose norm ``g`` is fixed to 1 when ``norm_last_layer`` (stabilises training).
Works on ``(B, D)`` global embeddings and on ``(B, N, D)`` patch tokens (iBOT, Zhou et al. 2022).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils.parametrizations import weight_norm


class DINOHead(nn.Module):
    """``forward(x: (..., in_dim)) -> (..., out_dim)`` prototype logits (before any temperature)."""

    def __init__(self, in_dim: int, out_dim: int, hidden_dim: int = 2048, bottleneck_dim: int = 256,
                 n_layers: int = 3, use_bn: bool = False, norm_last_layer: bool = True) -> None:
        super().__init__()
        if n_layers < 1:
            raise ValueError(f"DINOHead: n_layers must be >= 1, got {n_layers}")
        dims = [in_dim] + [hidden_dim] * (n_layers - 1) + [bottleneck_dim]
        layers: list[nn.Module] = []
        for i, (d_in, d_out) in enumerate(zip(dims[:-1], dims[1:])):
            layers.append(nn.Linear(d_in, d_out))
            if i < n_layers - 1:
                if use_bn:
                    layers.append(nn.BatchNorm1d(d_out))
                layers.append(nn.GELU())
        self.mlp = nn.Sequential(*layers)
        self.last_layer = weight_norm(nn.Linear(bottleneck_dim, out_dim, bias=False))
        with torch.no_grad():
            self.last_layer.parametrizations.weight.original0.fill_(1.0)
        if norm_last_layer:
            self.last_layer.parametrizations.weight.original0.requires_grad_(False)
        self.apply(self._init_weights)

    @staticmethod
    def _init_weights(module: nn.Module) -> None:
        if isinstance(module, nn.Linear) and not hasattr(module, "parametrizations"):
            nn.init.trunc_normal_(module.weight, std=0.02)
            if module.bias is not None:
                nn.init.zeros_(module.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        lead = x.shape[:-1]
        z = self.mlp(x.reshape(-1, x.shape[-1]))
        z = F.normalize(z, dim=-1, eps=1e-6 if z.dtype == torch.float16 else 1e-12)
        return self.last_layer(z).reshape(*lead, -1)
