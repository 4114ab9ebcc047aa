"""Vision transformer with patch 14 whose parameters are named exactly as DINOv2's ``DinoVisionTransformer``
(Oquab et al., "DINOv2: Learning Robust Visual Features without Supervision", 2023; registers from Darcet et
al., "Vision Transformers Need Registers", ICLR 2024), so official checkpoints load with ``strict=True``.

State-dict keys: ``cls_token (1, 1, D)``, ``pos_embed (1, 1 + g*g, D)`` (g = img_size / patch, 37 for 518),
``register_tokens (1, R, D)`` when R > 0, ``mask_token (1, D)``, ``patch_embed.proj.*``, ``blocks.{i}.*``
(see ``layers.block``), ``norm.*``. Nothing else lives in this module (temporal state is outside it).

Token order follows DINOv2: ``[cls, registers..., patches...]``; position embeddings are added to the class and
patch tokens before the registers are inserted. The patch part of ``pos_embed`` is bicubically interpolated to
the input's token grid, so any input whose sides are multiples of 14 works.
"""

from __future__ import annotations

import math
from functools import partial
from typing import Callable

import torch
import torch.nn.functional as F
from torch import nn

from perception.models.layers import Block, PatchEmbed


def interpolate_pos_embed(
    pos_embed: torch.Tensor,
    grid: tuple[int, int],
    src_grid: tuple[int, int] | None = None,
    antialias: bool = False,
    offset: float = 0.0,
) -> torch.Tensor:
    """Resample a ``(1, 1 + N, D)`` position embedding (class entry first) to ``grid`` = (h, w) tokens, bicubic.

    ``src_grid`` defaults to the square grid of N entries. Returns ``(1, 1 + h*w, D)`` in the input's dtype; the
    class entry is kept as is. The same grid returns the input unchanged. ``offset > 0`` reproduces DINOv2's
    historical sampling (``scale_factor = (h + offset) / src_h``, as its models without registers do); with 0 the
    output size is given directly (its register models).
    """
    num_patches = pos_embed.shape[1] - 1
    if src_grid is None:
        side = int(round(math.sqrt(num_patches)))
        if side * side != num_patches:
            raise ValueError(f"pos_embed has {num_patches} patch entries, not a square grid; pass src_grid")
        src_grid = (side, side)
    if src_grid[0] * src_grid[1] != num_patches:
        raise ValueError(f"pos_embed has {num_patches} patch entries, src_grid {src_grid} needs {src_grid[0] * src_grid[1]}")
    if tuple(grid) == tuple(src_grid):
        return pos_embed
    dim = pos_embed.shape[-1]
    cls_pos = pos_embed[:, :1]
    patch_pos = pos_embed[:, 1:].float().reshape(1, src_grid[0], src_grid[1], dim).permute(0, 3, 1, 2)
    if offset:
        scale = ((grid[0] + offset) / src_grid[0], (grid[1] + offset) / src_grid[1])
        patch_pos = F.interpolate(patch_pos, scale_factor=scale, mode="bicubic", antialias=antialias)
    else:
        patch_pos = F.interpolate(patch_pos, size=tuple(grid), mode="bicubic", antialias=antialias)
    if tuple(patch_pos.shape[-2:]) != tuple(grid):
        raise ValueError(f"pos_embed resampling gave grid {tuple(patch_pos.shape[-2:])}, expected {tuple(grid)}")
    patch_pos = patch_pos.permute(0, 2, 3, 1).reshape(1, grid[0] * grid[1], dim).to(pos_embed.dtype)
    return torch.cat([cls_pos, patch_pos], dim=1)


class VisionTransformer(nn.Module):
    """DINOv2-compatible ViT. ``forward_features(x)`` returns DINOv2's dictionary of normalised tokens."""

    def __init__(
        self,
        img_size: int = 518,
        patch_size: int = 14,
        in_chans: int = 3,
        embed_dim: int = 384,
        depth: int = 12,
        num_heads: int = 6,
        mlp_ratio: float = 4.0,
        init_values: float | None = 1e-5,
        num_register_tokens: int = 0,
        interpolate_antialias: bool | None = None,
        interpolate_offset: float | None = None,
        block_fn: Callable[..., nn.Module] = Block,
        norm_layer: Callable[[int], nn.Module] = partial(nn.LayerNorm, eps=1e-6),
    ) -> None:
        super().__init__()
        self.embed_dim = embed_dim
        self.patch_size = patch_size
        self.num_heads = num_heads
        self.num_register_tokens = num_register_tokens
        # DINOv2 hub settings: models without registers sample with offset 0.1 and no antialiasing, models with
        # registers with the exact size and antialiasing. None picks the matching setting.
        if interpolate_antialias is None:
            interpolate_antialias = num_register_tokens > 0
        if interpolate_offset is None:
            interpolate_offset = 0.0 if num_register_tokens else 0.1
        self.interpolate_antialias = interpolate_antialias
        self.interpolate_offset = interpolate_offset
        self.pos_grid = (img_size // patch_size, img_size // patch_size)
        self.patch_embed = PatchEmbed(patch_size, in_chans, embed_dim)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, embed_dim))
        self.pos_embed = nn.Parameter(torch.zeros(1, 1 + self.pos_grid[0] * self.pos_grid[1], embed_dim))
        if num_register_tokens:
            self.register_tokens = nn.Parameter(torch.zeros(1, num_register_tokens, embed_dim))
        else:
            self.register_tokens = None
        self.blocks = nn.ModuleList(
            block_fn(dim=embed_dim, num_heads=num_heads, mlp_ratio=mlp_ratio, init_values=init_values,
                     norm_layer=norm_layer)
            for _ in range(depth)
        )
        self.norm = norm_layer(embed_dim)
        self.mask_token = nn.Parameter(torch.zeros(1, embed_dim))
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """DINOv2/timm initialisation: normal(0, 0.02) for linear weights and pos_embed, tiny cls/registers.

        DINOv2 calls ``trunc_normal_(std=0.02)`` with the default absolute bounds of +-2, i.e. +-100 std: the same
        distribution as a plain normal, which is drawn here (torch's truncated sampler is 7x slower).
        """
        nn.init.normal_(self.pos_embed, std=0.02)
        nn.init.normal_(self.cls_token, std=1e-6)
        if self.register_tokens is not None:
            nn.init.normal_(self.register_tokens, std=1e-6)
        for module in self.modules():
            if isinstance(module, nn.Linear):
                nn.init.normal_(module.weight, std=0.02)
                if module.bias is not None:
                    nn.init.zeros_(module.bias)

    def grid(self, height: int, width: int) -> tuple[int, int]:
        return self.patch_embed.grid(height, width)

    def prepare_tokens(self, x: torch.Tensor, masks: torch.Tensor | None = None) -> torch.Tensor:
        """Images ``(B, 3, H, W)`` -> ``(B, 1 + R + N, D)``; ``masks`` ``(B, N)`` bool swaps in ``mask_token``."""
        batch = x.shape[0]
        grid = self.grid(x.shape[-2], x.shape[-1])
        tokens = self.patch_embed(x)
        if masks is not None:
            tokens = torch.where(masks.unsqueeze(-1), self.mask_token.to(tokens.dtype).unsqueeze(0), tokens)
        tokens = torch.cat([self.cls_token.expand(batch, -1, -1).to(tokens.dtype), tokens], dim=1)
        pos = interpolate_pos_embed(
            self.pos_embed, grid, self.pos_grid, self.interpolate_antialias, self.interpolate_offset
        )
        tokens = tokens + pos.to(tokens.dtype)
        if self.register_tokens is not None:
            regs = self.register_tokens.expand(batch, -1, -1).to(tokens.dtype)
            tokens = torch.cat([tokens[:, :1], regs, tokens[:, 1:]], dim=1)
        return tokens

    def forward_features(self, x: torch.Tensor, masks: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        """DINOv2's output dictionary: ``x_norm_clstoken (B, D)``, ``x_norm_regtokens (B, R, D)``,
        ``x_norm_patchtokens (B, N, D)``, ``x_prenorm (B, 1 + R + N, D)``, ``masks``."""
        tokens = self.prepare_tokens(x, masks)
        for block in self.blocks:
            tokens = block(tokens)
        return self.outputs(tokens, masks)

    def outputs(self, tokens: torch.Tensor, masks: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        """The output dictionary of ``forward_features`` from the tokens after the last block (final norm, then the
        class, register and patch tokens apart); also used by a run staged over several calls."""
        normed = self.norm(tokens)
        first_patch = 1 + self.num_register_tokens
        return {
            "x_norm_clstoken": normed[:, 0],
            "x_norm_regtokens": normed[:, 1:first_patch],
            "x_norm_patchtokens": normed[:, first_patch:],
            "x_prenorm": tokens,
            "masks": masks,
        }

    def forward(self, x: torch.Tensor, masks: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        return self.forward_features(x, masks)


def vit_tiny(**kwargs) -> VisionTransformer:
    """Test-sized ViT: D=96, depth 2, 3 heads (not a DINOv2 size)."""
    return VisionTransformer(**{"img_size": 224, "embed_dim": 96, "depth": 2, "num_heads": 3, **kwargs})


def vit_small(**kwargs) -> VisionTransformer:
    """ViT-S/14 as DINOv2's ``vit_small`` with its hub settings: D=384, depth 12, 6 heads, mlp 4, img 518."""
    return VisionTransformer(**{"embed_dim": 384, "depth": 12, "num_heads": 6, **kwargs})


def vit_base(**kwargs) -> VisionTransformer:
    """ViT-B/14 as DINOv2's ``vit_base``: D=768, depth 12, 12 heads."""
    return VisionTransformer(**{"embed_dim": 768, "depth": 12, "num_heads": 12, **kwargs})
