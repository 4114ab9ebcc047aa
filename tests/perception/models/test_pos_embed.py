"""Position-embedding interpolation and inputs of any size (multiples of 14) in the ViT."""

from __future__ import annotations

import pytest
import torch

from perception.models.global_stream import global_input_size
from perception.models.vit import VisionTransformer, interpolate_pos_embed


def test_same_grid_is_unchanged():
    pos = torch.randn(1, 1 + 37 * 37, 8)
    assert interpolate_pos_embed(pos, (37, 37)) is pos


def test_constant_field_stays_constant_and_cls_is_kept():
    pos = torch.full((1, 1 + 16, 4), 0.5)
    pos[:, 0] = 7.0
    out = interpolate_pos_embed(pos, (3, 9))
    assert out.shape == (1, 1 + 27, 4)
    assert torch.allclose(out[:, 1:], torch.full_like(out[:, 1:], 0.5), atol=1e-6)
    assert torch.equal(out[:, 0], pos[:, 0])


def test_linear_ramp_is_resampled_in_row_major_order():
    # A ramp along x (columns) on a 4x4 grid; upsampled to 2 rows x 8 columns it must still rise along x only.
    ramp = torch.arange(4.0).repeat(4)  # value = column index, rows first
    pos = torch.cat([torch.zeros(1), ramp]).view(1, 17, 1)
    out = interpolate_pos_embed(pos, (2, 8))[0, 1:, 0].view(2, 8)
    assert torch.allclose(out[0], out[1])
    assert (out[0, 1:] >= out[0, :-1]).all() and out[0, -1] > out[0, 0] + 2.5


def test_non_square_source_needs_src_grid():
    with pytest.raises(ValueError, match="not a square grid"):
        interpolate_pos_embed(torch.zeros(1, 1 + 12, 4), (2, 2))
    assert interpolate_pos_embed(torch.zeros(1, 1 + 12, 4), (6, 8), src_grid=(3, 4)).shape == (1, 49, 4)


def test_vit_runs_on_any_multiple_of_14():
    vit = VisionTransformer(img_size=56, embed_dim=24, depth=1, num_heads=2).eval()
    with torch.no_grad():
        out = vit.forward_features(torch.rand(1, 3, 70, 98))
    assert out["x_norm_patchtokens"].shape == (1, 5 * 7, 24)
    with pytest.raises(ValueError, match="not a multiple of the patch size 14"):
        vit.forward_features(torch.rand(1, 3, 60, 98))


def test_global_input_size_rounds_to_patches():
    assert global_input_size(480, 640, 0.5, 14) == (238, 322)
    assert global_input_size(480, 640, 1.0, 14) == (476, 644)
    assert global_input_size(10, 10, 0.5, 14) == (14, 14)
