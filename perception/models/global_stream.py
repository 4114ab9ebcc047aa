"""Global stream: the DINOv2-compatible ViT (``self.vit``) plus the temporal memory (``self.memory``).

The ViT sees the frame at ``scale`` times its resolution, resized so both sides are multiples of the patch
size (14); its state dict is exactly DINOv2's, so ``load_dinov2_state_dict(stream.vit, sd)`` loads official
weights. The memory tokens live outside the ViT (``temporal.MemoryUpdate``). Which frames are keyframes is
the encoder's decision; this module runs the ViT whenever it is called.

Staged runs: ``start`` (resize, patch embedding, positions), ``advance`` (the next ViT blocks) and ``finish``
(final norm, class/patch split, memory update) split one run into pieces that the encoder spreads over the frames
between keyframes, so no frame pays for a whole ViT. ``forward`` is ``finish(advance(start(x), all blocks))`` and
gives the same tensors as running them one after another.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from perception.models.temporal import MemoryUpdate
from perception.models.types import GlobalJob
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

    @property
    def depth(self) -> int:
        """Number of ViT blocks (the units ``advance`` counts)."""
        return len(self.vit.blocks)

    def start(self, x: torch.Tensor, scale: float = 1.0) -> GlobalJob:
        """Begin a run on normalised frames ``x``: resize, patch embedding and positions; no block yet."""
        x = self.resize(x, scale)
        return GlobalJob(tokens=self.vit.prepare_tokens(x), grid=self.vit.grid(x.shape[-2], x.shape[-1]), done=0)

    def advance(self, job: GlobalJob, blocks: int) -> GlobalJob:
        """Run the next ``blocks`` ViT blocks of ``job`` (fewer if fewer are left); returns the advanced job."""
        end = min(self.depth, job.done + max(0, int(blocks)))
        tokens = job.tokens
        for block in self.vit.blocks[job.done:end]:
            tokens = block(tokens)
        return GlobalJob(tokens=tokens, grid=job.grid, done=end)

    def finish(self, job: GlobalJob, memory: torch.Tensor | None) -> GlobalTokens:
        """Final norm, class and patch tokens, and the memory update of a job whose blocks have all run."""
        if job.done != self.depth:
            raise ValueError(f"GlobalStream.finish: {job.done} of {self.depth} blocks have run")
        feats = self.vit.outputs(job.tokens)
        cls, patches = feats["x_norm_clstoken"], feats["x_norm_patchtokens"]
        if memory is None:
            memory = self.memory.initial(job.tokens.shape[0])
        context = torch.cat([cls.unsqueeze(1), patches], dim=1)
        new_memory = self.memory(memory.to(patches.dtype), context)
        return GlobalTokens(cls=cls, patches=patches, grid=job.grid, memory=new_memory)

    def forward(self, x: torch.Tensor, memory: torch.Tensor | None, scale: float = 1.0) -> GlobalTokens:
        """``x`` normalised frames ``(B, 3, H, W)``; ``memory`` ``(B, M, D)`` or None for the learned start."""
        return self.finish(self.advance(self.start(x, scale), self.depth), memory)
