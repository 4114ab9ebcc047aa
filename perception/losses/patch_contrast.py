"""Patch-level contrast (InfoNCE) between two augmented views of the same frames.

InfoNCE (van den Oord et al. 2018) applied densely, as in dense contrastive learning (DenseCL, Wang et al. 2021;
PixPro, Xie et al. 2021): each patch of view A is pulled towards its counterpart in view B and pushed from the
other patches of B. With photometric augmentations the counterpart is the same position; otherwise pass the
known correspondence. Inputs are dense maps ``(B, C, h, w)`` or tokens ``(B, N, C)``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from perception.losses.precision import float32_loss


def as_tokens(x: torch.Tensor) -> torch.Tensor:
    """``(B, C, h, w)`` dense map -> ``(B, h*w, C)`` tokens; ``(B, N, C)`` passes through."""
    if x.dim() == 4:
        return x.flatten(2).transpose(1, 2)
    if x.dim() == 3:
        return x
    raise ValueError(f"expected a dense map (B, C, h, w) or tokens (B, N, C), got shape {tuple(x.shape)}")


class PatchInfoNCELoss(nn.Module):
    """``forward(view_a, view_b, correspondence=None, valid=None) -> scalar``.

    view_a, view_b: ``(B, C, h, w)`` or ``(B, N, C)``. correspondence: ``(B, N)`` long, the index in view B of
    the counterpart of each patch of view A (``None``: same position). valid: ``(B, N)`` bool, which patches of A
    count (e.g. not occluded). Negatives: the other patches of the same image (``negatives="image"``) or of the
    whole batch (``"batch"``). ``symmetric`` averages A->B and B->A (only with same-position correspondence).
    """

    def __init__(self, temperature: float = 0.1, negatives: str = "image", symmetric: bool = True) -> None:
        super().__init__()
        if temperature <= 0:
            raise ValueError(f"PatchInfoNCELoss: temperature must be > 0, got {temperature}")
        if negatives not in ("image", "batch"):
            raise ValueError(f"PatchInfoNCELoss: negatives must be 'image' or 'batch', got {negatives!r}")
        self.temperature = temperature
        self.negatives = negatives
        self.symmetric = symmetric

    def _direction(self, a: torch.Tensor, b: torch.Tensor, target: torch.Tensor, valid: torch.Tensor | None
                   ) -> torch.Tensor:
        bsz, n, _ = a.shape
        if self.negatives == "image":
            logits = torch.einsum("bnc,bmc->bnm", a, b) / self.temperature           # (B, N, N)
            ce = F.cross_entropy(logits.reshape(bsz * n, n), target.reshape(-1), reduction="none")
        else:
            logits = a.reshape(bsz * n, -1) @ b.reshape(bsz * n, -1).T / self.temperature  # (BN, BN)
            offset = (torch.arange(bsz, device=a.device) * n).unsqueeze(1)
            ce = F.cross_entropy(logits, (target + offset).reshape(-1), reduction="none")
        if valid is None:
            return ce.mean()
        keep = valid.reshape(-1)
        if not keep.any():
            raise ValueError("PatchInfoNCELoss: `valid` selects no patch")
        return ce[keep].mean()

    @float32_loss
    def forward(self, view_a: torch.Tensor, view_b: torch.Tensor, correspondence: torch.Tensor | None = None,
                valid: torch.Tensor | None = None) -> torch.Tensor:
        a = F.normalize(as_tokens(view_a).float(), dim=-1)
        b = F.normalize(as_tokens(view_b).float(), dim=-1)
        if a.shape != b.shape:
            raise ValueError(f"PatchInfoNCELoss: views differ in shape: {tuple(a.shape)} vs {tuple(b.shape)} "
                             "(as (B, N, C) tokens)")
        bsz, n, _ = a.shape
        for name, t in (("correspondence", correspondence), ("valid", valid)):
            if t is not None and t.shape != (bsz, n):
                raise ValueError(f"PatchInfoNCELoss: {name} shape {tuple(t.shape)}, expected (B, N) = {(bsz, n)}")
        if correspondence is None:
            target = torch.arange(n, device=a.device).expand(bsz, n)
        else:
            target = correspondence.long()
        loss = self._direction(a, b, target, valid)
        if self.symmetric and correspondence is None:
            loss = 0.5 * (loss + self._direction(b, a, target, valid))
        return loss
