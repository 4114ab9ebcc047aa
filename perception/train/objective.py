"""The pretraining objective: which self-supervised terms see which tensors of a clip.

Only this module knows how a clip becomes loss inputs; the losses themselves take tensors (``perception.losses``,
``perception.train.colour``). Terms, each off when its weight is 0 (``SSLObjective`` then never builds its
inputs, so a disabled term costs nothing):

- ``crw``: contrastive random walk (Jabri et al. 2020) over the clip's dense maps, average-pooled by ``crw_pool``.
- ``colour``: colour propagation (Vondrick et al. 2018) from frame t to frame t + g for g in ``colour_gaps``.
- ``patch_nce``: patch InfoNCE (same position) between the student on a photometrically augmented first frame and
  the EMA teacher on the clean one.
- ``variance``: VICReg variance/covariance (Bardes et al. 2022) on a sample of dense cells.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from perception.losses import (ContrastiveRandomWalkLoss, PatchInfoNCELoss, PhotometricAugment, SSLObjective,
                               VarianceCovarianceLoss)
from perception.train.colour import ColourPropagationLoss, colour_targets
from perception.train.config import LossConfig

TERMS = ("crw", "colour", "patch_nce", "variance")


class PretrainObjective(nn.Module):
    """``forward(student, teacher, clip (B, T, 3, H, W), generator) -> (total, parts, dense)``;
    ``dense`` is the student's ``(B, T, C, H/8, W/8)`` map (for the collapse metrics)."""

    def __init__(self, cfg: LossConfig, clip_len: int, variance_cells: int = 2048) -> None:
        super().__init__()
        gaps = [k for k in (1, 2, 3) if k < clip_len]
        terms = {
            "crw": ContrastiveRandomWalkLoss(cfg.crw_temperature, gaps=gaps, edge_dropout=cfg.crw_edge_dropout),
            "colour": ColourPropagationLoss(cfg.colour_temperature, cfg.colour_radius),
            "patch_nce": PatchInfoNCELoss(cfg.nce_temperature),
            "variance": VarianceCovarianceLoss(),
        }
        self.objective = SSLObjective(terms, {name: float(getattr(cfg, name)) for name in TERMS})
        self.cfg = cfg
        self.augment = PhotometricAugment()
        self.variance_cells = variance_cells

    @property
    def active(self) -> list[str]:
        return self.objective.active

    def _crw_inputs(self, dense: torch.Tensor) -> tuple[torch.Tensor]:
        batch, frames = dense.shape[:2]
        pooled = F.avg_pool2d(dense.flatten(0, 1), self.cfg.crw_pool) if self.cfg.crw_pool > 1 else dense.flatten(0, 1)
        return (pooled.view(batch, frames, *pooled.shape[1:]),)

    def _colour_inputs(self, dense: torch.Tensor, clip: torch.Tensor) -> tuple[torch.Tensor, ...]:
        with torch.no_grad():
            colours = colour_targets(clip.flatten(0, 1)).view(*clip.shape[:2], -1, *dense.shape[-2:])
        queries, refs, q_col, r_col = [], [], [], []
        for gap in self.cfg.colour_gaps:
            queries.append(dense[:, gap:].flatten(0, 1))
            refs.append(dense[:, :-gap].flatten(0, 1))
            q_col.append(colours[:, gap:].flatten(0, 1))
            r_col.append(colours[:, :-gap].flatten(0, 1))
        return torch.cat(queries), torch.cat(refs), torch.cat(q_col), torch.cat(r_col)

    def _nce_inputs(self, student: nn.Module, teacher: nn.Module, clip: torch.Tensor,
                    generator: torch.Generator | None) -> tuple[torch.Tensor, torch.Tensor]:
        first = clip[:, 0]
        view = self.augment(first, generator).clamp(0.0, 1.0)
        with torch.no_grad():
            target = teacher(first).dense
        return student(view).dense, target

    def _variance_inputs(self, dense: torch.Tensor, generator: torch.Generator | None) -> tuple[torch.Tensor]:
        cells = dense.movedim(2, -1).reshape(-1, dense.shape[2])
        count = min(self.variance_cells, cells.shape[0])
        pick = torch.randperm(cells.shape[0], generator=generator)[:count].to(cells.device)
        return (cells[pick].float(),)

    def forward(self, student: nn.Module, teacher: nn.Module, clip: torch.Tensor,
                generator: torch.Generator | None = None) -> tuple[torch.Tensor, dict[str, torch.Tensor], torch.Tensor]:
        batch, frames = clip.shape[:2]
        out = student(clip.flatten(0, 1))
        dense = out.dense.view(batch, frames, *out.dense.shape[1:])
        inputs = {
            "crw": lambda: self._crw_inputs(dense),
            "colour": lambda: self._colour_inputs(dense, clip),
            "patch_nce": lambda: self._nce_inputs(student, teacher, clip, generator),
            "variance": lambda: self._variance_inputs(dense, generator),
        }
        total, parts = self.objective(inputs)
        return total, parts, dense
