"""Temporal memory of the global stream: M learned tokens updated at each keyframe from the global tokens.

The memory reads the new keyframe's tokens with cross-attention (as the latent array of Perceiver, Jaegle et
al. 2021, or the memory of XMem, Cheng & Schwing 2022), and a GRU-style gate (Cho et al. 2014) decides per
channel how much of the read replaces the old memory: ``m' = (1 - z) * m + z * (m + read)``. The gate bias
starts at 0 (half update), so a scene change is absorbed within a few keyframes while a static scene keeps a
stable memory. The memory tokens are offered to the fusion next to the patch tokens.
"""

from __future__ import annotations

from functools import partial
from typing import Callable

import torch
from torch import nn

from perception.models.layers import CrossAttention


class MemoryUpdate(nn.Module):
    """Memory ``(B, M, D)`` x tokens ``(B, N, D)`` -> new memory ``(B, M, D)``."""

    def __init__(
        self,
        dim: int,
        num_tokens: int = 8,
        num_heads: int = 4,
        attn_fn: Callable[..., nn.Module] = CrossAttention,
        norm_layer: Callable[[int], nn.Module] = partial(nn.LayerNorm, eps=1e-6),
    ) -> None:
        super().__init__()
        self.num_tokens = num_tokens
        self.init_tokens = nn.Parameter(torch.randn(1, num_tokens, dim) * 0.02)
        self.norm_memory = norm_layer(dim)
        self.norm_tokens = norm_layer(dim)
        self.read = attn_fn(dim, dim, dim, num_heads=num_heads)
        self.gate = nn.Linear(2 * dim, dim)
        nn.init.zeros_(self.gate.bias)
        nn.init.normal_(self.gate.weight, std=0.02)

    def initial(self, batch: int) -> torch.Tensor:
        """The memory before any keyframe: the learned tokens, ``(B, M, D)``."""
        return self.init_tokens.expand(batch, -1, -1)

    def forward(self, memory: torch.Tensor, tokens: torch.Tensor) -> torch.Tensor:
        candidate = memory + self.read(self.norm_memory(memory), self.norm_tokens(tokens))
        gate = torch.sigmoid(self.gate(torch.cat([memory, candidate], dim=-1)))
        return memory + gate * (candidate - memory)
