"""Collapse metrics for embeddings, shared by training logs and the online adapter's guard.

``feature_std``: mean over dimensions of the per-dimension standard deviation, on L2-normalised embeddings by
default (SimSiam, Chen & He 2021, Sec. 4: about ``1/sqrt(D)`` when healthy, 0 when collapsed).
``effective_rank``: ``exp(H(p))`` with ``p`` the singular values normalised to sum 1 (Roy & Vetterli 2007; used
as RankMe by Garrido et al. 2023): ``n`` for an ``n x n`` identity, 1 for a rank-1 matrix.
Both run without gradient in float64 and return a 0-dim tensor (``.item()`` for a float).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def flatten_dense(x: torch.Tensor) -> torch.Tensor:
    """``(B, C, h, w)`` dense map -> ``(B*h*w, C)`` embeddings; ``(B, N, C)`` -> ``(B*N, C)``; ``(N, D)`` as is."""
    if x.dim() == 4:
        return x.movedim(1, -1).reshape(-1, x.shape[1])
    if x.dim() == 3:
        return x.reshape(-1, x.shape[-1])
    if x.dim() == 2:
        return x
    raise ValueError(f"flatten_dense: expected (N, D), (B, N, C) or (B, C, h, w), got shape {tuple(x.shape)}")


@torch.no_grad()
def feature_std(x: torch.Tensor, normalize: bool = True) -> torch.Tensor:
    """Mean over dimensions of the (unbiased) std over samples of ``x (N, D)`` (any shape ``flatten_dense``
    takes); ``normalize`` L2-normalises each sample first."""
    z = flatten_dense(x).double()
    if z.shape[0] < 2:
        raise ValueError(f"feature_std: need at least 2 samples, got shape {tuple(x.shape)}")
    if normalize:
        z = F.normalize(z, dim=-1)
    return z.std(dim=0).mean()


@torch.no_grad()
def effective_rank(x: torch.Tensor, center: bool = False, eps: float = 1e-12) -> torch.Tensor:
    """``exp(-sum_i p_i log p_i)``, ``p = s / sum(s)``, ``s`` the singular values of ``x (N, D)`` (any shape
    ``flatten_dense`` takes). ``center`` subtracts the mean sample first. A zero matrix has rank 0 here."""
    z = flatten_dense(x).double()
    if center:
        z = z - z.mean(dim=0)
    s = torch.linalg.svdvals(z)
    total = s.sum()
    if total <= eps:
        return torch.zeros((), dtype=torch.float64)
    p = s / total
    p = p[p > eps]
    return torch.exp(-(p * p.log()).sum())
