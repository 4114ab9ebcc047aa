"""PatchInfoNCELoss against a closed-form 2-patch case; matching views beat shuffled ones."""

from __future__ import annotations

import math

import pytest
import torch

from perception.losses import PatchInfoNCELoss, PhotometricAugment


def test_two_orthogonal_patches_closed_form() -> None:
    # Patches e1, e2 in both views, tau = 1: logits rows [1, 0] and [0, 1] -> CE = log(1 + e^-1) = 0.3133.
    tokens = torch.eye(2).unsqueeze(0)                                   # (1, N=2, C=2)
    loss = PatchInfoNCELoss(temperature=1.0)(tokens, tokens)
    assert loss.item() == pytest.approx(math.log(1 + math.exp(-1)), abs=1e-6)
    assert math.log(1 + math.exp(-1)) == pytest.approx(0.313262, abs=1e-6)
    # Same as a (B, C, h, w) dense map of h=1, w=2.
    dense = tokens.transpose(1, 2).reshape(1, 2, 1, 2)
    assert PatchInfoNCELoss(temperature=1.0)(dense, dense).item() == pytest.approx(loss.item(), abs=1e-6)


def test_swapped_correspondence_and_valid_mask() -> None:
    a = torch.eye(2).unsqueeze(0)
    b = a[:, [1, 0]]                                                     # patches swapped in view B
    fn = PatchInfoNCELoss(temperature=1.0)
    # With the true correspondence (patch 0 of A is patch 1 of B) the loss is the matched value.
    corr = torch.tensor([[1, 0]])
    assert fn(a, b, correspondence=corr).item() == pytest.approx(math.log(1 + math.exp(-1)), abs=1e-6)
    # Assuming same position instead: every patch is matched with its orthogonal one: log(1 + e).
    assert fn(a, b).item() == pytest.approx(math.log(1 + math.e), abs=1e-6)
    # Only patch 1 of A is valid; its counterpart is wrong in view c.
    c = torch.tensor([[[1.0, 0.0], [1.0, 0.0]]])
    valid = torch.tensor([[False, True]])
    # Row for patch 1 of A = e2: logits [0, 0] -> CE ln 2.
    assert PatchInfoNCELoss(temperature=1.0, symmetric=False)(a, c, valid=valid).item() == pytest.approx(
        math.log(2), abs=1e-6)
    # Symmetric: A->C gives ln 2 for both patches (rows [1, 1] and [0, 0]); C->A gives log(1 + e^-1) for
    # patch 0 (e1 vs [e1, e2], target 0) and log(1 + e) for patch 1 (e1 vs [e1, e2], target 1).
    c_to_a = 0.5 * (math.log(1 + math.exp(-1)) + math.log(1 + math.e))
    assert PatchInfoNCELoss(temperature=1.0, symmetric=True)(a, c).item() == pytest.approx(
        0.5 * (math.log(2) + c_to_a), abs=1e-6)


def test_batch_negatives_closed_form() -> None:
    # Two images of one patch each: e1 and e2. Image negatives: a single candidate -> loss 0.
    a = torch.eye(2).unsqueeze(1)                                        # (B=2, N=1, C=2)
    assert PatchInfoNCELoss(temperature=1.0)(a, a).item() == pytest.approx(0.0, abs=1e-6)
    # Batch negatives: each patch against both -> log(1 + e^-1).
    got = PatchInfoNCELoss(temperature=1.0, negatives="batch")(a, a).item()
    assert got == pytest.approx(math.log(1 + math.exp(-1)), abs=1e-6)


def test_matching_augmented_views_beat_shuffled_and_gradients_flow() -> None:
    g = torch.Generator().manual_seed(0)
    images = torch.rand(2, 3, 32, 32, generator=g)
    aug = PhotometricAugment(brightness=0.3, contrast=0.3, noise_std=0.02, blur_prob=0.0)
    feats_a = torch.nn.functional.avg_pool2d(aug(images, g), 4).requires_grad_(True)   # (2, 3, 8, 8) "features"
    feats_b = torch.nn.functional.avg_pool2d(aug(images, g), 4)
    # Centre per channel so cosine similarity reflects the content, not the mean colour.
    fa = feats_a - feats_a.mean(dim=(2, 3), keepdim=True)
    fb = feats_b - feats_b.mean(dim=(2, 3), keepdim=True)
    fn = PatchInfoNCELoss(temperature=0.1)
    matched = fn(fa, fb)
    perm = torch.randperm(64, generator=g)
    shuffled = fn(fa, fb.flatten(2)[:, :, perm].reshape_as(fb))
    assert matched.item() < shuffled.item() - 0.3
    matched.backward()
    assert feats_a.grad is not None and feats_a.grad.abs().sum() > 0


def test_shape_errors_name_the_problem() -> None:
    fn = PatchInfoNCELoss()
    with pytest.raises(ValueError, match="views differ"):
        fn(torch.zeros(1, 4, 2, 2), torch.zeros(1, 4, 2, 3))
    with pytest.raises(ValueError, match="correspondence shape"):
        fn(torch.rand(1, 4, 2), torch.rand(1, 4, 2), correspondence=torch.zeros(1, 3, dtype=torch.long))
    with pytest.raises(ValueError, match="temperature"):
        PatchInfoNCELoss(temperature=0.0)
