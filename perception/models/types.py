"""Types shared by every encoder: its output and its streaming state.

Shapes, documented once here: clip ``(B, T, C, H, W)``; frames ``(B, 3, H, W)`` float in [0, 1] before
normalisation; tokens ``(B, N, D)``; dense map ``(B, C, H/8, W/8)``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch


@dataclass
class EncoderOutput:
    """dense: ``(B, C, H/8, W/8)`` fused stride-8 feature map. global_embedding: ``(B, D)``.
    local: ``(B, C_local, H/8, W/8)`` the local stream alone (before fusion).
    global_tokens: ``(B, N, D_global)`` patch tokens of the last global-stream run.
    keyframe: ``(B,)`` bool, whether the global stream ran on this frame."""

    dense: torch.Tensor
    global_embedding: torch.Tensor
    local: torch.Tensor | None = None
    global_tokens: torch.Tensor | None = None
    keyframe: torch.Tensor | None = None


@dataclass
class GlobalJob:
    """A global-stream run in progress (staged over several frames): ``tokens (B, 1 + R + N, D)`` after the first
    ``done`` ViT blocks, on the patch grid ``grid`` (h, w)."""

    tokens: torch.Tensor
    grid: tuple[int, int]
    done: int = 0


@dataclass
class EncoderState:
    """Explicit streaming state of one or more cameras (batch dimension B). ``None`` fields mean "no history".

    memory: ``(B, M, D_global)`` memory tokens carried through time.
    global_tokens: ``(B, N, D_global)`` the last global patch tokens, with their grid ``(h, w)``.
    frame_index: frames seen so far (decides keyframes).
    pending: a staged global-stream run started at the last keyframe and not finished yet (``global_stages > 1``).
    """

    memory: torch.Tensor | None = None
    global_tokens: torch.Tensor | None = None
    global_grid: tuple[int, int] | None = None
    global_cls: torch.Tensor | None = None
    frame_index: int = 0
    extra: dict = field(default_factory=dict)
    pending: GlobalJob | None = None
