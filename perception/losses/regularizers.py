"""Regularisers against representation collapse.

``KoLeoLoss``: the Kozachenko-Leonenko differential-entropy estimator (Sablayrolles et al. 2019, "Spreading
vectors for similarity search"), as used in DINOv2 (Oquab et al. 2023): ``-mean_i log(min_{j!=i} ||x_i - x_j||)``
on L2-normalised embeddings; larger when points cluster. ``VarianceCovarianceLoss``: the variance and covariance
terms of VICReg (Bardes et al. 2022, Eq. 1-4); the invariance term is what the other objectives already provide.
Inputs are embeddings ``(N, D)``; dense maps are flattened to ``(B*h*w, C)`` by ``flatten_dense`` first.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from perception.losses.precision import float32_loss


def _check_2d(x: torch.Tensor, who: str, min_rows: int = 2) -> None:
    if x.dim() != 2 or x.shape[0] < min_rows:
        raise ValueError(f"{who}: expected embeddings (N, D) with N >= {min_rows}, got shape {tuple(x.shape)}")


class KoLeoLoss(nn.Module):
    """``forward(x (N, D)) -> scalar``: ``-mean_i log(d_i + eps)``, ``d_i`` the distance from ``x_i`` to its
    nearest neighbour among the others, after L2 normalisation (``normalize=True``)."""

    def __init__(self, eps: float = 1e-8, normalize: bool = True) -> None:
        super().__init__()
        self.eps, self.normalize = eps, normalize

    @float32_loss
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        _check_2d(x, "KoLeoLoss")
        z = x.float()
        if self.normalize:
            z = F.normalize(z, dim=-1, eps=self.eps)
        with torch.no_grad():
            dots = z @ z.T
            dots.fill_diagonal_(-float("inf"))
            nearest = dots.argmax(dim=1) if self.normalize else _nearest_euclidean(z)
        dist = (z - z[nearest]).pow(2).sum(dim=-1).add(self.eps ** 2).sqrt()
        return -torch.log(dist + self.eps).mean()


def _nearest_euclidean(z: torch.Tensor) -> torch.Tensor:
    d = torch.cdist(z, z)
    d.fill_diagonal_(float("inf"))
    return d.argmin(dim=1)


@float32_loss
def variance_term(x: torch.Tensor, gamma: float = 1.0, eps: float = 1e-4) -> torch.Tensor:
    """VICReg variance hinge: ``mean_d relu(gamma - sqrt(Var(x[:, d]) + eps))`` (unbiased variance)."""
    _check_2d(x, "variance_term")
    std = torch.sqrt(x.float().var(dim=0) + eps)
    return F.relu(gamma - std).mean()


@float32_loss
def covariance_term(x: torch.Tensor) -> torch.Tensor:
    """VICReg covariance: sum of squared off-diagonal entries of the covariance matrix, divided by ``D``."""
    _check_2d(x, "covariance_term")
    z = x.float() - x.float().mean(dim=0)
    n, d = z.shape
    cov = z.T @ z / (n - 1)
    off = cov - torch.diag(torch.diagonal(cov))
    return off.pow(2).sum() / d


class VarianceCovarianceLoss(nn.Module):
    """``forward(x (N, D)) -> scalar``: ``variance_weight * variance_term + covariance_weight * covariance_term``
    (VICReg defaults 25 and 1, with ``gamma = 1``)."""

    def __init__(self, variance_weight: float = 25.0, covariance_weight: float = 1.0, gamma: float = 1.0,
                 eps: float = 1e-4) -> None:
        super().__init__()
        self.variance_weight, self.covariance_weight = variance_weight, covariance_weight
        self.gamma, self.eps = gamma, eps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        total = x.new_zeros((), dtype=torch.float32)
        if self.variance_weight != 0:
            total = total + self.variance_weight * variance_term(x, self.gamma, self.eps)
        if self.covariance_weight != 0:
            total = total + self.covariance_weight * covariance_term(x)
        return total
