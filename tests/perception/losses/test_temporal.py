"""ContrastiveRandomWalkLoss: closed-form 2-node round trip; identical frames near the minimum, unrelated higher."""

from __future__ import annotations

import math

import pytest
import torch

from perception.losses import ContrastiveRandomWalkLoss


def two_node_loss(tau: float) -> float:
    # Nodes e1, e2 in both frames: A = [[a, 1-a], [1-a, a]], a = sigmoid(1/tau); round trip A @ A has diagonal
    # a^2 + (1-a)^2; cross-entropy against the identity = -log(a^2 + (1-a)^2).
    a = 1 / (1 + math.exp(-1 / tau))
    return -math.log(a * a + (1 - a) * (1 - a))


def test_two_nodes_closed_form() -> None:
    frame = torch.eye(2).unsqueeze(0)                                     # (B=1, N=2, C=2)
    clip = torch.stack([frame, frame], dim=1)                             # (1, T=2, 2, 2)
    loss = ContrastiveRandomWalkLoss(temperature=1.0, gaps=(1,))(clip)
    assert loss.item() == pytest.approx(two_node_loss(1.0), abs=1e-6)
    assert two_node_loss(1.0) == pytest.approx(0.49955, abs=1e-4)


def test_palindrome_through_intermediate_frames_closed_form() -> None:
    # Three identical frames, gap 2 through frame 1: walk 0->1->2->1->0 = A^4. Diagonal of A^4 for the symmetric
    # 2x2 A with eigenvalues 1 and (2a-1): (1 + (2a-1)^4) / 2.
    frame = torch.eye(2).unsqueeze(0)
    clip = torch.stack([frame] * 3, dim=1)
    a = 1 / (1 + math.exp(-1.0))
    expected = -math.log((1 + (2 * a - 1) ** 4) / 2)
    got = ContrastiveRandomWalkLoss(temperature=1.0, gaps=(2,))(clip).item()
    assert got == pytest.approx(expected, abs=1e-6)
    direct = ContrastiveRandomWalkLoss(temperature=1.0, gaps=(2,), through_intermediate=False)(clip).item()
    assert direct == pytest.approx(two_node_loss(1.0), abs=1e-6)
    # Gaps average: gap 1 has two starts with the 2-step value, gap 2 the 4-step value.
    both = ContrastiveRandomWalkLoss(temperature=1.0, gaps=(1, 2, 8))(clip).item()
    assert both == pytest.approx(0.5 * (two_node_loss(1.0) + expected), abs=1e-6)


def test_cached_walks_equal_explicit_palindromes() -> None:
    g = torch.Generator().manual_seed(1)
    clip = torch.randn(2, 5, 8, 3, 3, generator=g)
    fn = ContrastiveRandomWalkLoss(temperature=0.3, gaps=(1, 3, 4))
    frames = [torch.nn.functional.normalize(clip[:, t].flatten(2).transpose(1, 2), dim=-1) for t in range(5)]
    expected = torch.stack([torch.stack([fn.round_trip_loss(frames[t:t + k + 1]) for t in range(5 - k)]).mean()
                            for k in (1, 3, 4)]).mean()
    assert fn(clip).item() == pytest.approx(expected.item(), rel=1e-5)


def test_identical_frames_near_minimum_unrelated_frames_higher() -> None:
    g = torch.Generator().manual_seed(0)
    frame = torch.randn(2, 32, 4, 4, generator=g)                         # (B, C, h, w): 16 nodes per frame
    identical = torch.stack([frame] * 4, dim=1)                           # (B, T=4, C, h, w)
    unrelated = torch.randn(2, 4, 32, 4, 4, generator=g)
    # Moved content: each later frame is the first one with its patches permuted (objects moved).
    moved = torch.stack([frame] + [frame.flatten(2)[:, :, torch.randperm(16, generator=g)].reshape_as(frame)
                                   for _ in range(3)], dim=1)
    fn = ContrastiveRandomWalkLoss(temperature=0.05, gaps=(1, 2, 3))
    same = fn(identical).item()
    assert same < 0.05
    assert fn(moved).item() == pytest.approx(same, abs=1e-5)              # moving content is not penalised
    assert fn(unrelated).item() > same + 1.0


def test_gradients_flow_and_errors() -> None:
    clip = torch.randn(1, 3, 8, 3, 3, requires_grad=True)
    loss = ContrastiveRandomWalkLoss(temperature=0.1, gaps=(1, 2), edge_dropout=0.1).train()(clip)
    loss.backward()
    assert clip.grad is not None and torch.isfinite(clip.grad).all() and clip.grad.abs().sum() > 0
    with pytest.raises(ValueError, match="no gap"):
        ContrastiveRandomWalkLoss(gaps=(4,))(torch.randn(1, 2, 8, 3, 3))
    with pytest.raises(ValueError, match="T >= 2"):
        ContrastiveRandomWalkLoss()(torch.randn(1, 1, 8, 3, 3))
