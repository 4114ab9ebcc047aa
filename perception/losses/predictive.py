"""Prediction of the next frame's latent features (JEPA / V-JEPA style: Assran et al. 2023, Bardes et al. 2024).

``LatentPredictor`` maps the current dense map (plus an optional conditioning vector: the global embedding or a
state summary, and the frame gap) to a prediction of the dense map ``k`` frames later. ``FutureLatentLoss``
compares it with the stop-gradient target (from the EMA teacher): smooth L1 on layer-normalised targets, as
V-JEPA regresses normalised features, or ``1 - cosine``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from perception.losses.precision import float32_loss


class LatentPredictor(nn.Module):
    """``forward(features (B, C, h, w), cond (B, cond_dim) | None = None) -> (B, C, h, w)``.

    A residual stack of ``n_layers`` 3x3 conv + GroupNorm + GELU blocks at width ``hidden_dim``, ending in a 1x1
    conv initialised to zero, so an untrained predictor predicts "no change". ``cond`` is projected and added
    to the hidden map at every position (FiLM-like bias).
    """

    def __init__(self, dim: int, hidden_dim: int | None = None, n_layers: int = 2, cond_dim: int = 0,
                 kernel_size: int = 3) -> None:
        super().__init__()
        if n_layers < 1 or kernel_size % 2 == 0:
            raise ValueError(f"LatentPredictor: need n_layers >= 1 and an odd kernel_size, got n_layers={n_layers},"
                             f" kernel_size={kernel_size}")
        hidden = hidden_dim or dim
        self.dim, self.cond_dim = dim, cond_dim
        self.inp = nn.Conv2d(dim, hidden, 1)
        self.cond = nn.Linear(cond_dim, hidden) if cond_dim > 0 else None
        self.blocks = nn.ModuleList(
            nn.Sequential(nn.Conv2d(hidden, hidden, kernel_size, padding=kernel_size // 2),
                          nn.GroupNorm(_groups(hidden), hidden), nn.GELU())
            for _ in range(n_layers))
        self.out = nn.Conv2d(hidden, dim, 1)
        nn.init.zeros_(self.out.weight)
        nn.init.zeros_(self.out.bias)

    def forward(self, features: torch.Tensor, cond: torch.Tensor | None = None) -> torch.Tensor:
        if features.dim() != 4 or features.shape[1] != self.dim:
            raise ValueError(f"LatentPredictor: expected features (B, {self.dim}, h, w), got {tuple(features.shape)}")
        h = self.inp(features)
        if self.cond is not None:
            if cond is None or cond.shape != (features.shape[0], self.cond_dim):
                got = None if cond is None else tuple(cond.shape)
                raise ValueError(f"LatentPredictor: cond must be (B, {self.cond_dim}) = "
                                 f"{(features.shape[0], self.cond_dim)}, got {got}")
            h = h + self.cond(cond)[:, :, None, None]
        elif cond is not None:
            raise ValueError("LatentPredictor: cond given but the predictor was built with cond_dim=0")
        for block in self.blocks:
            h = h + block(h)
        return features + self.out(h)


def _groups(channels: int, max_groups: int = 8) -> int:
    return next(g for g in range(min(max_groups, channels), 0, -1) if channels % g == 0)


class FutureLatentLoss(nn.Module):
    """``forward(prediction (B, C, h, w), target (B, C, h, w), valid (B, h, w) bool | None = None) -> scalar``.

    The target is detached (stop-gradient). ``kind="smooth_l1"`` (with ``beta``) averages over channels and
    positions; ``kind="cosine"`` averages ``1 - cos`` over positions. ``normalize_target`` layer-normalises the
    target over channels first (V-JEPA); it applies to ``smooth_l1`` only (cosine is scale-free).
    """

    def __init__(self, kind: str = "smooth_l1", beta: float = 1.0, normalize_target: bool = True) -> None:
        super().__init__()
        if kind not in ("smooth_l1", "cosine"):
            raise ValueError(f"FutureLatentLoss: kind must be 'smooth_l1' or 'cosine', got {kind!r}")
        self.kind, self.beta, self.normalize_target = kind, beta, normalize_target

    @float32_loss
    def forward(self, prediction: torch.Tensor, target: torch.Tensor, valid: torch.Tensor | None = None
                ) -> torch.Tensor:
        if prediction.shape != target.shape or prediction.dim() != 4:
            raise ValueError(f"FutureLatentLoss: expected equal (B, C, h, w) maps, got prediction "
                             f"{tuple(prediction.shape)} and target {tuple(target.shape)}")
        pred, tgt = prediction.float(), target.detach().float()
        if self.kind == "cosine":
            per_pos = 1.0 - F.cosine_similarity(pred, tgt, dim=1)                   # (B, h, w)
        else:
            if self.normalize_target:
                tgt = F.layer_norm(tgt.movedim(1, -1), (tgt.shape[1],)).movedim(-1, 1)
            per_pos = F.smooth_l1_loss(pred, tgt, beta=self.beta, reduction="none").mean(dim=1)
        if valid is None:
            return per_pos.mean()
        if valid.shape != per_pos.shape:
            raise ValueError(f"FutureLatentLoss: valid shape {tuple(valid.shape)}, expected (B, h, w) "
                             f"{tuple(per_pos.shape)}")
        if not valid.any():
            raise ValueError("FutureLatentLoss: `valid` selects no position")
        return per_pos[valid].mean()
