"""KoLeoLoss and the VICReg variance/covariance terms against hand-computed values."""

from __future__ import annotations

import math

import pytest
import torch

from perception.losses import KoLeoLoss, VarianceCovarianceLoss, covariance_term, variance_term


def test_koleo_closed_form() -> None:
    # Points at 0, 90 and 180 degrees on the unit circle: each nearest neighbour is at distance sqrt(2).
    x = torch.tensor([[1.0, 0.0], [0.0, 1.0], [-1.0, 0.0]])
    assert KoLeoLoss()(x).item() == pytest.approx(-math.log(math.sqrt(2)), abs=1e-6)
    # Normalisation: scaling a point changes nothing.
    assert KoLeoLoss()(x * torch.tensor([[5.0], [1.0], [2.0]])).item() == pytest.approx(-0.5 * math.log(2), abs=1e-6)
    # Without normalisation: points 0, 1, 3 on a line -> distances 1, 1, 2 -> -(0 + 0 + ln 2) / 3.
    line = torch.tensor([[0.0], [1.0], [3.0]])
    assert KoLeoLoss(normalize=False)(line).item() == pytest.approx(-math.log(2) / 3, abs=1e-6)


def test_koleo_larger_for_clustered_points_and_gradient_spreads_them() -> None:
    g = torch.Generator().manual_seed(0)
    spread = torch.randn(64, 8, generator=g)
    clustered = torch.randn(1, 8, generator=g) + 0.05 * torch.randn(64, 8, generator=g)
    fn = KoLeoLoss()
    assert fn(clustered).item() > fn(spread).item() + 1.0
    pts = clustered.clone().requires_grad_(True)
    fn(pts).backward()
    assert pts.grad is not None and torch.isfinite(pts.grad).all()
    with torch.no_grad():
        stepped = pts - 0.05 * pts.grad
    assert fn(stepped).item() < fn(clustered).item()
    # Duplicated points stay finite.
    assert torch.isfinite(fn(torch.ones(4, 3)))


def test_variance_and_covariance_terms_closed_form() -> None:
    x = torch.tensor([[1.0, 0.0], [-1.0, 0.0]])
    # Unbiased variances [2, 0] -> stds [sqrt(2 + 1e-4), 1e-2]; hinge at 1: [0, 0.99] -> mean 0.495.
    assert variance_term(x, gamma=1.0, eps=1e-4).item() == pytest.approx(0.495, abs=1e-6)
    assert covariance_term(x).item() == pytest.approx(0.0, abs=1e-7)
    y = torch.tensor([[1.0, 1.0], [-1.0, -1.0]])
    # Covariance [[2, 2], [2, 2]]: off-diagonal squares 4 + 4 = 8, divided by D = 2 -> 4.
    assert covariance_term(y).item() == pytest.approx(4.0, abs=1e-6)
    loss = VarianceCovarianceLoss(variance_weight=25.0, covariance_weight=1.0)(y)
    std = math.sqrt(2 + 1e-4)
    assert loss.item() == pytest.approx(25 * max(0.0, 1 - std) + 4.0, abs=1e-5)


def test_variance_covariance_penalises_collapse() -> None:
    g = torch.Generator().manual_seed(0)
    healthy = torch.randn(256, 16, generator=g)
    collapsed = torch.randn(256, 1, generator=g).expand(256, 16) * 0.1
    fn = VarianceCovarianceLoss()
    assert fn(collapsed).item() > fn(healthy).item() + 10
    with pytest.raises(ValueError, match="N >= 2"):
        fn(torch.randn(1, 4))
