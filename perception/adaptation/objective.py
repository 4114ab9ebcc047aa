"""The online adaptation loss: the pretraining objectives on a clip from the buffer, plus an anchor to the source.

Terms (each off at weight 0, through ``SSLObjective``):
- ``patch``: PatchInfoNCE between the student's dense map of one photometric view and the EMA teacher's dense map of
  another view of the same frames (dense contrast, DenseCL; mean teacher as in CoTTA, Wang et al. 2022).
- ``temporal``: contrastive random walk (Jabri et al. 2020) across the clip's frames, on dense maps pooled to a
  ``walk_grid`` square.
- ``anchor``: ``sum_i ||theta_i - theta_i^source||^2`` over the adapted subset: the L2-SP anchor (Li et al. 2018)
  that keeps test-time updates near the source weights, against drift (cf. EATA's Fisher anchor, Niu et al. 2022).
- ``collapse``: KoLeo entropy regulariser (Sablayrolles et al. 2019; DINOv2) on the pooled dense features.
- ``exposure``: ``ExposureLoss``: the luma mean and contrast of the input adapter's output pulled into the band of
  natural footage (squared hinges; no gradient inside the band, no network forward at all), and its noise, on
  crops at the served resolution, below ``exposure_noise_max``. The term that undoes the photometric shifts
  (dimming, haze, low contrast) and sensor noise through ``InputAffine``.
- ``align``: ``StatsAlignmentLoss`` (ActMAD, Mirza et al. 2023): the local stream's activation statistics on the clip
  pulled back toward the source statistics stored in its BN layers, past a margin that clean footage stays within.
  It is the term that sees a photometric shift directly (the contrastive terms are nearly invariant to it: they were
  trained to be), and it needs only the local stream, so an update with only ``align`` and ``anchor`` on is a few
  milliseconds.

The full model runs only when ``patch``, ``temporal`` or ``collapse`` is on.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

import torch
import torch.nn.functional as F
from torch import nn

from perception.adaptation.alignment import StatsAlignmentLoss
from perception.adaptation.config import AdaptationConfig
from perception.adaptation.exposure import ExposureLoss
from perception.losses import (ContrastiveRandomWalkLoss, KoLeoLoss, PatchInfoNCELoss, PhotometricAugment,
                               SSLObjective)


class AnchorLoss(nn.Module):
    """``forward(params: {name: Tensor}, source: {name: Tensor}) -> scalar`` sum of squared differences."""

    def forward(self, params: Mapping[str, torch.Tensor], source: Mapping[str, torch.Tensor]) -> torch.Tensor:
        total = None
        for name, p in params.items():
            term = (p.float() - source[name].to(p.device, torch.float32)).pow(2).sum()
            total = term if total is None else total + term
        return total if total is not None else torch.zeros(())


class _AlignTerm(nn.Module):
    """Passes an already computed loss (alignment, exposure) through ``SSLObjective`` (so its weight and logging apply)."""

    def forward(self, loss: torch.Tensor) -> torch.Tensor:
        return loss


def pooled_tokens(dense: torch.Tensor, grid: int) -> torch.Tensor:
    """``(B, C, h, w)`` -> ``(B, grid*grid, C)`` by adaptive average pooling."""
    return F.adaptive_avg_pool2d(dense.float(), grid).flatten(2).transpose(1, 2)


class AdaptationObjective(nn.Module):
    """``forward(model, clip, teacher_dense, params, source, generator, detail) -> (total, parts, student_dense)``.

    clip: ``(T, 3, h, w)`` in [0, 1]; detail: the same frames' crops at the served resolution (noise term) or None. ``teacher_dense(x) -> (T, C, h/8, w/8)`` runs the EMA teacher without
    gradient. ``params``/``source``: the adapted subset and its source values (for the anchor).
    """

    def __init__(self, cfg: AdaptationConfig) -> None:
        super().__init__()
        self.grid = int(cfg.walk_grid)
        gaps = tuple(range(1, cfg.clip_length))
        self.augment = PhotometricAugment()
        self.loss = SSLObjective(
            {"patch": PatchInfoNCELoss(temperature=0.1), "temporal": ContrastiveRandomWalkLoss(gaps=gaps),
             "anchor": AnchorLoss(), "collapse": KoLeoLoss(), "align": _AlignTerm(), "exposure": _AlignTerm()},
            {"patch": cfg.patch_weight, "temporal": cfg.temporal_weight, "anchor": cfg.anchor_weight,
             "collapse": cfg.collapse_weight, "align": cfg.align_weight, "exposure": cfg.exposure_weight},
        )
        self.exposure = ExposureLoss(cfg.exposure_mean, cfg.exposure_std, cfg.exposure_mean_margin,
                                     cfg.exposure_std_factor, cfg.exposure_noise_max,
                                     trigger_margin=cfg.exposure_trigger_margin,
                                     trigger_factor=cfg.exposure_trigger_factor, luma=cfg.exposure_luma)
        self.align = StatsAlignmentLoss(cfg.align_margin, cfg.align_units)
        self.discrepancy = float("nan")

    def forward(self, model: nn.Module, clip: torch.Tensor,  # type: ignore[override]
                teacher_dense: Callable[[torch.Tensor], torch.Tensor], params: Mapping[str, torch.Tensor],
                source: Mapping[str, torch.Tensor], generator: torch.Generator | None = None,
                detail: torch.Tensor | None = None) -> tuple[torch.Tensor, dict[str, torch.Tensor], torch.Tensor]:
        active = set(self.loss.active)
        dense = tokens = target = None
        if active & {"patch", "temporal", "collapse"}:
            view_a = self.augment(clip, generator) if "patch" in active else clip
            target = teacher_dense(self.augment(clip, generator)) if "patch" in active else None
            dense = model(view_a).dense                                 # (T, C, h', w')
            tokens = pooled_tokens(dense, self.grid)                    # (T, g*g, C)
        aligned = None
        if "align" in active:
            aligned, self.discrepancy = self.align(model, clip)
        exposed, luma = None, (float("nan"), float("nan"), float("nan"))
        if "exposure" in active:
            exposed, luma = self.exposure(model, clip, detail)
        total, parts = self.loss({
            "patch": lambda: (dense, target),
            "temporal": lambda: tokens.unsqueeze(0),                    # (1, T, g*g, C)
            "anchor": lambda: (params, source),
            "collapse": lambda: tokens.reshape(-1, tokens.shape[-1]),
            "align": lambda: aligned,
            "exposure": lambda: exposed,
        })
        if "exposure" in active:
            parts["luma_mean"], parts["luma_contrast"] = torch.tensor(luma[0]), torch.tensor(luma[1])
            if luma[2] == luma[2]:                                      # measured (not nan)
                parts["noise"] = torch.tensor(luma[2])
        if "align" in active:
            parts["discrepancy"] = torch.tensor(self.discrepancy)
        return total, parts, (dense.detach() if dense is not None else None)
