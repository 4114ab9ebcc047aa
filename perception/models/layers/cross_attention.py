"""Multi-head cross-attention (Vaswani et al. 2017, encoder-decoder attention) with positional terms added to
queries and keys only, as in DETR (Carion et al., ECCV 2020).

Queries come from one token set ``(B, Nq, Dq)``, keys and values from another ``(B, Nk, Dk)``; the output has
``out_dim`` channels. Used by the fusion (local features query global tokens) and by the temporal memory
(memory tokens query global tokens).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class CrossAttention(nn.Module):
    """``(B, Nq, query_dim)`` x ``(B, Nk, kv_dim)`` -> ``(B, Nq, out_dim)``; inner width ``dim``."""

    def __init__(
        self,
        query_dim: int,
        kv_dim: int,
        dim: int,
        num_heads: int = 4,
        out_dim: int | None = None,
        qkv_bias: bool = True,
    ) -> None:
        super().__init__()
        if dim % num_heads:
            raise ValueError(f"CrossAttention: dim {dim} is not divisible by num_heads {num_heads}")
        self.num_heads = num_heads
        self.dim = dim
        self.q = nn.Linear(query_dim, dim, bias=qkv_bias)
        self.kv = nn.Linear(kv_dim, 2 * dim, bias=qkv_bias)
        self.proj = nn.Linear(dim, out_dim or query_dim)

    def _heads(self, x: torch.Tensor) -> torch.Tensor:
        batch, tokens, _ = x.shape
        return x.reshape(batch, tokens, self.num_heads, self.dim // self.num_heads).transpose(1, 2)

    def forward(
        self,
        query: torch.Tensor,
        context: torch.Tensor,
        query_pos: torch.Tensor | None = None,
        key_pos: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """``query_pos`` ``(1|B, Nq, dim)`` and ``key_pos`` ``(1|B, Nk, dim)`` are added after projection."""
        q = self.q(query)
        k, v = self.kv(context).chunk(2, dim=-1)
        if query_pos is not None:
            q = q + query_pos.to(q.dtype)
        if key_pos is not None:
            k = k + key_pos.to(k.dtype)
        out = F.scaled_dot_product_attention(self._heads(q), self._heads(k), self._heads(v))
        batch, _, tokens, _ = out.shape
        return self.proj(out.transpose(1, 2).reshape(batch, tokens, self.dim))
