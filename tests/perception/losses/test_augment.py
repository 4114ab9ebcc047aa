"""Photometric augmentations: exact values of each transform, seeded determinism, geometry kept, masks."""

from __future__ import annotations

import math

import pytest
import torch

from perception.losses import (PhotometricAugment, add_gaussian_noise, adjust_brightness, adjust_contrast,
                               adjust_gamma, apply_occlusion, gaussian_blur, random_block_mask)


def test_brightness_contrast_gamma_values() -> None:
    img = torch.tensor([0.2, 0.4, 0.8]).view(1, 3, 1, 1).expand(2, 3, 2, 2).clone()
    assert torch.allclose(adjust_brightness(img, 1.0), img)
    out = adjust_brightness(img, torch.tensor([0.5, 2.0]))
    assert out[0, :, 0, 0].tolist() == pytest.approx([0.1, 0.2, 0.4])
    assert out[1, :, 0, 0].tolist() == pytest.approx([0.4, 0.8, 1.0])     # clamped
    grey = 0.299 * 0.2 + 0.587 * 0.4 + 0.114 * 0.8
    flat = adjust_contrast(img, 0.0)
    assert torch.allclose(flat, torch.full_like(img, grey))
    half = adjust_contrast(img, 0.5)
    assert half[0, :, 0, 0].tolist() == pytest.approx([grey + 0.5 * (v - grey) for v in (0.2, 0.4, 0.8)])
    assert adjust_gamma(img, 2.0)[0, :, 0, 0].tolist() == pytest.approx([0.04, 0.16, 0.64])
    assert torch.allclose(adjust_gamma(img, 1.0), img)


def test_gaussian_blur_impulse_response_and_constant() -> None:
    img = torch.zeros(1, 1, 9, 9)
    img[0, 0, 4, 4] = 1.0
    out = gaussian_blur(img, 1.0, radius=2)
    w = torch.tensor([math.exp(-0.5 * d * d) for d in (-2, -1, 0, 1, 2)])
    w = w / w.sum()
    assert torch.allclose(out[0, 0, 2:7, 2:7], torch.outer(w, w), atol=1e-6)
    assert out.sum().item() == pytest.approx(1.0, abs=1e-6)
    const = torch.full((2, 3, 8, 8), 0.3)
    assert torch.allclose(gaussian_blur(const, torch.tensor([0.5, 2.0])), const, atol=1e-6)
    # Tiny sigma leaves the image unchanged; per-sample sigma blurs only the second image.
    two = torch.rand(2, 1, 8, 8, generator=torch.Generator().manual_seed(0))
    mixed = gaussian_blur(two, torch.tensor([0.0, 1.5]))
    assert torch.allclose(mixed[0], two[0], atol=1e-6) and not torch.allclose(mixed[1], two[1], atol=1e-3)


def test_noise_is_seeded_and_has_the_requested_std() -> None:
    img = torch.full((1, 3, 64, 64), 0.5)
    a = add_gaussian_noise(img, 0.05, torch.Generator().manual_seed(3))
    b = add_gaussian_noise(img, 0.05, torch.Generator().manual_seed(3))
    c = add_gaussian_noise(img, 0.05, torch.Generator().manual_seed(4))
    assert torch.equal(a, b) and not torch.equal(a, c)
    assert (a - img).std().item() == pytest.approx(0.05, rel=0.05)


def test_photometric_augment_is_seeded_and_keeps_geometry() -> None:
    # A bright square on a dark background: after augmentation its pixels stay the brightest, at the same place.
    img = torch.full((4, 3, 32, 32), 0.2)
    img[:, :, 8:16, 20:28] = 0.8
    aug = PhotometricAugment(blur_prob=1.0, blur_sigma=(0.5, 1.0))
    out1 = aug(img, torch.Generator().manual_seed(0))
    out2 = aug(img, torch.Generator().manual_seed(0))
    assert torch.equal(out1, out2) and out1.shape == img.shape
    assert 0.0 <= out1.min().item() and out1.max().item() <= 1.0
    inside = out1[:, :, 10:14, 22:26].mean(dim=(1, 2, 3))
    outside = out1[:, :, 24:, :8].mean(dim=(1, 2, 3))
    assert torch.all(inside > outside + 0.2)
    assert not torch.allclose(out1[0], out1[1])                           # per-sample parameters differ


def test_block_masks_cover_the_requested_fraction_and_occlude() -> None:
    g = torch.Generator().manual_seed(0)
    masks = random_block_mask(8, (14, 14), ratio=(0.3, 0.5), generator=g)
    frac = masks.float().mean(dim=(1, 2))
    assert masks.shape == (8, 14, 14) and masks.dtype == torch.bool
    assert torch.all(frac >= 0.3 - 1e-6) and torch.all(frac <= 0.75)
    again = random_block_mask(8, (14, 14), ratio=(0.3, 0.5), generator=torch.Generator().manual_seed(0))
    assert torch.equal(masks, again)
    assert not random_block_mask(2, (4, 4), ratio=0.0).any()
    img = torch.rand(1, 3, 8, 8)
    mask = torch.zeros(1, 2, 2, dtype=torch.bool)
    mask[0, 0, 1] = True                                                  # top-right quarter
    occluded = apply_occlusion(img, mask, fill=0.5)
    assert torch.all(occluded[0, :, :4, 4:] == 0.5)
    assert torch.equal(occluded[0, :, 4:], img[0, :, 4:]) and torch.equal(occluded[0, :, :4, :4], img[0, :, :4, :4])
    with pytest.raises(ValueError, match="ratio must lie in"):
        random_block_mask(1, (4, 4), ratio=1.5)
