"""Collapse metrics: effective rank (Roy & Vetterli 2007) and per-dimension feature std."""

from __future__ import annotations

import math

import pytest
import torch

from perception.losses import effective_rank, feature_std, flatten_dense


@pytest.mark.parametrize("n", [1, 3, 16])
def test_effective_rank_identity_is_n(n: int) -> None:
    assert effective_rank(torch.eye(n)).item() == pytest.approx(n, abs=1e-9)


def test_effective_rank_rank_one_and_closed_form() -> None:
    g = torch.Generator().manual_seed(0)
    u, v = torch.randn(50, 1, generator=g), torch.randn(1, 12, generator=g)
    assert effective_rank(u @ v).item() == pytest.approx(1.0, abs=1e-5)
    # Singular values [2, 1, 1] -> p = [1/2, 1/4, 1/4] -> H = 1.5 ln 2 -> erank = 2 sqrt(2).
    assert effective_rank(torch.diag(torch.tensor([2.0, 1.0, 1.0]))).item() == pytest.approx(2 * math.sqrt(2),
                                                                                               abs=1e-9)
    assert effective_rank(torch.zeros(4, 3)).item() == 0.0
    # Centring removes a shared offset: rows c + e_i for i < 3 have centred rank 2.
    shifted = torch.eye(3) + 10.0
    assert effective_rank(shifted).item() < 1.5
    assert effective_rank(shifted, center=True).item() == pytest.approx(2.0, abs=1e-6)


def test_effective_rank_of_dense_map() -> None:
    dense = torch.zeros(1, 4, 2, 2)                                      # 4 positions, each a distinct basis vector
    for i in range(4):
        dense[0, i, i // 2, i % 2] = 1.0
    assert flatten_dense(dense).shape == (4, 4)
    assert effective_rank(dense).item() == pytest.approx(4.0, abs=1e-9)


def test_feature_std_closed_form_and_collapse() -> None:
    x = torch.tensor([[1.0, 0.0], [-1.0, 0.0]])
    # Unbiased stds [sqrt(2), 0] -> mean sqrt(2)/2.
    assert feature_std(x, normalize=False).item() == pytest.approx(math.sqrt(2) / 2, abs=1e-9)
    collapsed = torch.ones(10, 8) * 3.0
    assert feature_std(collapsed).item() == pytest.approx(0.0, abs=1e-12)
    g = torch.Generator().manual_seed(0)
    healthy = torch.randn(4096, 64, generator=g)
    # Normalised Gaussian embeddings: per-dimension std about 1/sqrt(D).
    assert feature_std(healthy).item() == pytest.approx(1 / math.sqrt(64), rel=0.02)
