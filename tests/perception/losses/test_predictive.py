"""LatentPredictor and FutureLatentLoss: closed-form smooth-L1 / cosine values, stop-gradient, learning a shift."""

from __future__ import annotations

import math

import pytest
import torch

from perception.losses import FutureLatentLoss, LatentPredictor


def test_smooth_l1_closed_form() -> None:
    pred = torch.zeros(1, 2, 1, 1)
    target = torch.tensor([0.5, 2.0]).view(1, 2, 1, 1)
    # beta = 1: 0.5 * 0.5^2 = 0.125 and 2 - 0.5 = 1.5; mean over channels = 0.8125.
    loss = FutureLatentLoss(kind="smooth_l1", beta=1.0, normalize_target=False)(pred, target)
    assert loss.item() == pytest.approx(0.8125, abs=1e-6)
    # Layer-normalised target over channels: [0.5, 2] -> [-1, 1] (up to eps) -> 0.5 each.
    normed = FutureLatentLoss(kind="smooth_l1", beta=1.0, normalize_target=True)(pred, target)
    assert normed.item() == pytest.approx(0.5, abs=1e-4)


def test_cosine_closed_form_and_valid_mask() -> None:
    pred = torch.tensor([[1.0, 1.0], [0.0, 0.0]]).view(1, 2, 1, 2)          # positions: (1, 0) and (1, 0)
    target = torch.tensor([[1.0, 1.0], [1.0, -1.0]]).view(1, 2, 1, 2)      # positions: (1, 1) and (1, -1)
    fn = FutureLatentLoss(kind="cosine")
    assert fn(pred, target).item() == pytest.approx(1 - 1 / math.sqrt(2), abs=1e-6)
    # Position 1 now points the other way (cos = -1, loss 2); the mask leaves it out.
    flipped = torch.tensor([[1.0, -1.0], [1.0, 0.0]]).view(1, 2, 1, 2)
    assert fn(pred, flipped).item() == pytest.approx(0.5 * (1 - 1 / math.sqrt(2) + 2.0), abs=1e-6)
    valid = torch.tensor([[[True, False]]])
    assert fn(pred, flipped, valid).item() == pytest.approx(1 - 1 / math.sqrt(2), abs=1e-6)
    with pytest.raises(ValueError, match="selects no position"):
        fn(pred, target, torch.zeros(1, 1, 2, dtype=torch.bool))


def test_target_is_stop_gradient() -> None:
    pred = torch.randn(1, 4, 3, 3, requires_grad=True)
    target = torch.randn(1, 4, 3, 3, requires_grad=True)
    FutureLatentLoss()(pred, target).backward()
    assert pred.grad is not None and pred.grad.abs().sum() > 0
    assert target.grad is None


def test_untrained_predictor_is_identity_and_learns_a_shift() -> None:
    torch.manual_seed(0)
    predictor = LatentPredictor(dim=4, hidden_dim=8, n_layers=1, cond_dim=2)
    x = torch.randn(2, 4, 6, 6)
    cond = torch.randn(2, 2)
    assert torch.allclose(predictor(x, cond), x)
    # Next frame = current frame moved one cell right (circular): the conv predictor can learn it.
    target = torch.roll(x, shifts=1, dims=3)
    fn = FutureLatentLoss(kind="smooth_l1", normalize_target=False)
    first = fn(predictor(x, cond), target).item()
    for _ in range(60):                    # plain gradient descent (torch.optim's first import costs ~1 s)
        predictor.zero_grad()
        loss = fn(predictor(x, cond), target)
        loss.backward()
        with torch.no_grad():
            for p in predictor.parameters():
                p -= 0.3 * p.grad
    assert loss.item() < 0.25 * first


def test_predictor_errors() -> None:
    with pytest.raises(ValueError, match="cond must be"):
        LatentPredictor(dim=4, cond_dim=3)(torch.randn(1, 4, 2, 2))
    with pytest.raises(ValueError, match="cond_dim=0"):
        LatentPredictor(dim=4)(torch.randn(1, 4, 2, 2), torch.randn(1, 3))
    with pytest.raises(ValueError, match=r"\(B, 4, h, w\)"):
        LatentPredictor(dim=4)(torch.randn(1, 5, 2, 2))
