"""SSLObjective: weighted total, parts, zero weight never computes the term nor its lazy inputs."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from perception.losses import DINOLoss, KoLeoLoss, PatchInfoNCELoss, SSLObjective


class CountingLoss(nn.Module):
    """A loss that counts its calls: mean of the input."""

    def __init__(self) -> None:
        super().__init__()
        self.calls = 0

    def forward(self, x: torch.Tensor, scale: float = 1.0) -> torch.Tensor:
        self.calls += 1
        return x.mean() * scale


def test_weighted_total_and_parts() -> None:
    a, b = CountingLoss(), CountingLoss()
    objective = SSLObjective({"a": a, "b": b}, {"a": 2.0, "b": 0.5})
    x = torch.tensor([1.0, 3.0], requires_grad=True)
    total, parts = objective({"a": (x,), "b": {"x": x, "scale": 4.0}})
    # a = mean = 2, b = 4 * 2 = 8 -> total 2 * 2 + 0.5 * 8 = 8.
    assert total.item() == pytest.approx(8.0)
    assert {k: v.item() for k, v in parts.items()} == {"a": 2.0, "b": 8.0}
    assert not parts["a"].requires_grad
    total.backward()
    # d total / dx_i = 2 * 1/2 + 0.5 * 4 * 1/2 = 2.
    assert x.grad.tolist() == pytest.approx([2.0, 2.0])


def test_zero_weight_term_is_never_computed() -> None:
    on, off = CountingLoss(), CountingLoss()
    objective = SSLObjective({"on": on, "off": off}, {"on": 1.0, "off": 0.0})
    assert objective.active == ["on"]

    def explode() -> tuple:
        raise AssertionError("inputs of a zero-weight term were computed")

    total, parts = objective({"on": torch.ones(3), "off": explode})
    assert (on.calls, off.calls) == (1, 0)
    assert list(parts) == ["on"] and total.item() == 1.0
    # Inputs that would raise inside the term are fine too, and missing inputs for an off term are fine.
    objective({"on": torch.ones(3), "off": ("not a tensor",)})
    objective({"on": torch.ones(3)})
    assert off.calls == 0
    # Switching it on by weight: now it runs and the lazy input is evaluated.
    objective.set_weight("off", 3.0)
    total, parts = objective({"on": torch.ones(3), "off": lambda: (torch.full((2,), 2.0),)})
    assert off.calls == 1 and total.item() == pytest.approx(1.0 + 3.0 * 2.0)


def test_disabled_dino_keeps_its_centre_in_checkpoints_and_untouched() -> None:
    dino = DINOLoss(out_dim=4, skip_same_view=False)
    objective = SSLObjective({"dino": dino, "koleo": KoLeoLoss()}, {"dino": 0.0, "koleo": 0.1})
    assert "terms.dino.center" in objective.state_dict()
    pts = torch.tensor([[1.0, 0.0], [0.0, 1.0], [-1.0, 0.0]])
    total, parts = objective({"dino": (torch.ones(1, 2, 4), torch.ones(1, 2, 4) * 5), "koleo": pts})
    assert total.item() == pytest.approx(0.1 * -0.5 * math.log(2), abs=1e-6)
    assert torch.all(dino.center == 0)


def test_all_off_gives_zero_and_errors_name_the_term() -> None:
    objective = SSLObjective({"nce": PatchInfoNCELoss()}, {"nce": 0.0})
    total, parts = objective({})
    assert total.item() == 0.0 and parts == {}
    with pytest.raises(ValueError, match="terms without weight: \\['nce'\\]"):
        SSLObjective({"nce": PatchInfoNCELoss()}, {})
    with pytest.raises(ValueError, match="weight of 'nce' must be >= 0"):
        objective.set_weight("nce", -1.0)
    with pytest.raises(KeyError, match="no term 'dino'"):
        objective.set_weight("dino", 1.0)
    objective.set_weight("nce", 1.0)
    with pytest.raises(KeyError, match="'nce' has weight 1.0 but no inputs"):
        objective({})
    with pytest.raises(KeyError, match="unknown terms \\['typo'\\]"):
        objective({"nce": (torch.rand(1, 4, 2),) * 2, "typo": ()})
