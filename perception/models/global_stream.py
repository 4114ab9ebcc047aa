"""Global stream: the DINOv2-compatible ViT (``self.vit``) plus the temporal memory (``self.memory``).

The ViT sees the frame at ``scale`` times its resolution, resized so both sides are multiples of the patch
size (14); its state dict is exactly DINOv2's, so ``load_dinov2_state_dict(stream.vit, sd)`` loads official
weights. The memory tokens live outside the ViT (``temporal.MemoryUpdate``). Which frames are keyframes is
the encoder's decision; this module runs the ViT whenever it is called.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from perception.models.temporal import MemoryUpdate
from perception.models.vit import VisionTransformer


@dataclass
class GlobalTokens:
    """One global-stream run: ``cls (B, D)``, ``patches (B, h*w, D)`` on ``grid`` (h, w), ``memory (B, M, D)``."""

    cls: torch.Tensor
    patches: torch.Tensor
    grid: tuple[int, int]
    memory: torch.Tensor


def global_input_size(height: int, width: int, scale: float, patch: int) -> tuple[int, int]:
    """Size the ViT sees: ``scale`` times the frame, rounded to the nearest multiple of ``patch`` (at least one)."""
    def side(n: int) -> int:
        return max(1, int(round(n * scale / patch))) * patch

    return side(height), side(width)


class GlobalStream(nn.Module):
    """``vit`` (DINOv2 names) + ``memory`` (temporal tokens); call with normalised frames and the old memory."""

    def __init__(self, vit: VisionTransformer, memory: MemoryUpdate) -> None:
        super().__init__()
        self.vit = vit
        self.memory = memory
        self.embed_dim = vit.embed_dim
        self.patch_size = vit.patch_size

    def resize(self, x: torch.Tensor, scale: float) -> torch.Tensor:
        """Bilinear (antialiased when shrinking) resize to ``global_input_size``."""
        size = global_input_size(x.shape[-2], x.shape[-1], scale, self.patch_size)
        if tuple(x.shape[-2:]) == size:
            return x
        shrink = size[0] < x.shape[-2] or size[1] < x.shape[-1]
        return F.interpolate(x, size=size, mode="bilinear", align_corners=False, antialias=shrink)

    def forward(self, x: torch.Tensor, memory: torch.Tensor | None, scale: float = 1.0) -> GlobalTokens:
        """``x`` normalised frames ``(B, 3, H, W)``; ``memory`` ``(B, M, D)`` or None for the learned start."""
        x = self.resize(x, scale)
        grid = self.vit.grid(x.shape[-2], x.shape[-1])
        feats = self.vit.forward_features(x)
        cls, patches = feats["x_norm_clstoken"], feats["x_norm_patchtokens"]
        if memory is None:
            memory = self.memory.initial(x.shape[0])
        context = torch.cat([cls.unsqueeze(1), patches], dim=1)
        new_memory = self.memory(memory.to(patches.dtype), context)
        return GlobalTokens(cls=cls, patches=patches, grid=grid, memory=new_memory)
