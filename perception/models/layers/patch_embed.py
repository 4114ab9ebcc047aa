"""Patch embedding of a vision transformer (Dosovitskiy et al., "An Image is Worth 16x16 Words", ICLR 2021).

A strided convolution cuts the image into ``patch_size`` x ``patch_size`` patches and projects each to
``embed_dim``. The convolution is named ``proj`` as in DINOv2's ``PatchEmbed`` so that official checkpoints
(``patch_embed.proj.weight``, ``patch_embed.proj.bias``) load unchanged.
"""

from __future__ import annotations

import torch
from torch import nn


class PatchEmbed(nn.Module):
    """``(B, 3, H, W)`` -> tokens ``(B, (H/p)*(W/p), D)``; H and W must be multiples of the patch size."""

    def __init__(self, patch_size: int = 14, in_chans: int = 3, embed_dim: int = 384) -> None:
        super().__init__()
        self.patch_size = patch_size
        self.embed_dim = embed_dim
        self.proj = nn.Conv2d(in_chans, embed_dim, kernel_size=patch_size, stride=patch_size)

    def grid(self, height: int, width: int) -> tuple[int, int]:
        """Token grid ``(h, w)`` of an input of this size."""
        return height // self.patch_size, width // self.patch_size

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        _, _, height, width = x.shape
        p = self.patch_size
        if height % p or width % p:
            raise ValueError(f"PatchEmbed: input {height}x{width} is not a multiple of the patch size {p}")
        return self.proj(x).flatten(2).transpose(1, 2)
