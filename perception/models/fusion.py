"""Fusion of the two streams: local features query the global tokens (cross-attention, Vaswani et al. 2017),
with fixed 2-D sine-cosine positions added to queries and keys (DETR, Carion et al. 2020) so each stride-8 cell
starts by looking at the global tokens above it and learns where else to look.

Output: a dense map ``(B, out_dim, h, w)`` at the local stream's stride, ``local_proj(local) + attention``, and a
global embedding ``(B, embed_dim)`` projected from the ViT's class token and the mean of the dense map (so it
follows the current frame even between keyframes). The keys are the patch tokens plus the memory tokens (no
position for the memory). ``query_pool > 1`` averages the queries over ``query_pool`` x ``query_pool`` cells and
upsamples the read back (attention cost / query_pool**2; the local path keeps full resolution).
"""

from __future__ import annotations

from functools import partial
from typing import Callable

import torch
from torch import nn

from perception.models.layers import CrossAttention, sincos_2d


class Fusion(nn.Module):
    """Local ``(B, C, h, w)`` + global patches ``(B, N, D)`` on ``grid`` + memory ``(B, M, D)`` + cls ``(B, D)``."""

    def __init__(
        self,
        local_dim: int,
        global_dim: int,
        out_dim: int,
        embed_dim: int,
        attn_dim: int = 64,
        num_heads: int = 2,
        query_pool: int = 1,
        attn_fn: Callable[..., nn.Module] = CrossAttention,
        norm_layer: Callable[[int], nn.Module] = partial(nn.LayerNorm, eps=1e-6),
    ) -> None:
        super().__init__()
        self.out_dim = out_dim
        self.embed_dim = embed_dim
        self.attn_dim = attn_dim
        self.query_pool = int(query_pool)
        if self.query_pool < 1:
            raise ValueError(f"Fusion: query_pool must be >= 1, got {query_pool}")
        self.norm_local = norm_layer(local_dim)
        self.norm_global = norm_layer(global_dim)
        self.attn = attn_fn(local_dim, global_dim, attn_dim, num_heads=num_heads, out_dim=out_dim)
        self.local_proj = nn.Linear(local_dim, out_dim)
        self.embed_norm = norm_layer(global_dim + out_dim)
        self.embed_proj = nn.Linear(global_dim + out_dim, embed_dim)

    def forward(
        self,
        local: torch.Tensor,
        patches: torch.Tensor,
        grid: tuple[int, int],
        memory: torch.Tensor,
        cls: torch.Tensor,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        batch, channels, height, width = local.shape
        # A view, no copy, when ``local`` is channels_last.
        queries = local.permute(0, 2, 3, 1).reshape(batch, height * width, channels)
        context = torch.cat([patches, memory.to(patches.dtype)], dim=1)
        device = local.device
        query_pos = sincos_2d(height, width, self.attn_dim, device) if self.query_pool == 1 else None
        key_pos = torch.cat(
            [sincos_2d(grid[0], grid[1], self.attn_dim, device),
             torch.zeros(1, memory.shape[1], self.attn_dim, device=device)],
            dim=1,
        )
        if self.query_pool == 1:
            read = self.attn(self.norm_local(queries), self.norm_global(context), query_pos, key_pos)
        else:
            read = self._pooled_read(local, context, key_pos)
        fused = self.local_proj(queries) + read
        dense = fused.reshape(batch, height, width, self.out_dim).permute(0, 3, 1, 2)
        pooled = torch.cat([cls.to(fused.dtype), fused.mean(dim=1)], dim=-1)
        embedding = self.embed_proj(self.embed_norm(pooled))
        return dense, embedding

    def _pooled_read(self, local: torch.Tensor, context: torch.Tensor, key_pos: torch.Tensor) -> torch.Tensor:
        """Queries average-pooled by ``query_pool`` (fewer, coarser queries: the attention costs
        ``1 / query_pool**2``), the read upsampled bilinearly back to the local grid. Returns ``(B, h*w, out)``."""
        batch, _, height, width = local.shape
        pooled = nn.functional.avg_pool2d(local, self.query_pool, ceil_mode=True)
        ph, pw = pooled.shape[-2:]
        queries = pooled.permute(0, 2, 3, 1).reshape(batch, ph * pw, -1)
        query_pos = sincos_2d(ph, pw, self.attn_dim, local.device)
        read = self.attn(self.norm_local(queries), self.norm_global(context), query_pos, key_pos)
        read = read.reshape(batch, ph, pw, -1).permute(0, 3, 1, 2)
        read = nn.functional.interpolate(read, size=(height, width), mode="bilinear", align_corners=False)
        return read.permute(0, 2, 3, 1).reshape(batch, height * width, -1)
