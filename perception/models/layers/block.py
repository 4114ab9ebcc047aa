"""Pre-norm transformer block (ViT, Dosovitskiy et al. 2021) with LayerScale, named as DINOv2's ``Block``:
``norm1``, ``attn``, ``ls1``, ``norm2``, ``mlp``, ``ls2``.

``x = x + ls1(attn(norm1(x)))``; ``x = x + ls2(mlp(norm2(x)))``. With ``init_values`` None or 0 the LayerScale
modules are identities (no ``gamma`` parameter), as in DINOv2. The attention and feed-forward classes are
arguments, so models build their blocks with ``functools.partial(Block, ...)``.
"""

from __future__ import annotations

from functools import partial
from typing import Callable

import torch
from torch import nn

from perception.models.layers.attention import Attention
from perception.models.layers.layer_scale import LayerScale
from perception.models.layers.mlp import Mlp


class Block(nn.Module):
    """Tokens ``(B, N, D)`` -> ``(B, N, D)``."""

    def __init__(
        self,
        dim: int,
        num_heads: int,
        mlp_ratio: float = 4.0,
        qkv_bias: bool = True,
        proj_bias: bool = True,
        ffn_bias: bool = True,
        init_values: float | None = 1e-5,
        norm_layer: Callable[[int], nn.Module] = partial(nn.LayerNorm, eps=1e-6),
        act_layer: Callable[[], nn.Module] = nn.GELU,
        attn_class: Callable[..., nn.Module] = Attention,
        ffn_layer: Callable[..., nn.Module] = Mlp,
    ) -> None:
        super().__init__()
        self.norm1 = norm_layer(dim)
        self.attn = attn_class(dim, num_heads=num_heads, qkv_bias=qkv_bias, proj_bias=proj_bias)
        self.ls1 = LayerScale(dim, init_values) if init_values else nn.Identity()
        self.norm2 = norm_layer(dim)
        self.mlp = ffn_layer(
            in_features=dim, hidden_features=int(dim * mlp_ratio), act_layer=act_layer, bias=ffn_bias
        )
        self.ls2 = LayerScale(dim, init_values) if init_values else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.ls1(self.attn(self.norm1(x)))
        return x + self.ls2(self.mlp(self.norm2(x)))
