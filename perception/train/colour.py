"""Colour propagation: reconstruct a frame's colours from another frame's colours through feature affinities.

"Tracking Emerges by Colorizing Videos" (Vondrick et al., ECCV 2018) and MAST (Lai et al., CVPR 2020): the
target's per-cell colour is predicted as ``softmax_j(<q_i, r_j> / tau) @ colour(r_j)``, the very read-out of label
propagation with the colours as labels, and compared with the target's true colours (Huber loss). It keeps colour
and texture in the dense features (a collapsed map copies the mean colour and is penalised), and rewards features
that pick the matching cell when colour alone is ambiguous.

Colours are CIE Lab (sRGB, D65, as OpenCV converts float images), normalised like the ``rgb`` baseline of
EVAL_PROTOCOL.md: ``((L - 50) / 25, a / 15, b / 15)``. Per stride-8 cell the target holds the cell mean (3 values)
and the means of its four 4x4 quarters (12 values): colour plus a little texture.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from perception.losses.precision import float32_loss

_RGB_TO_XYZ = torch.tensor([[0.412453, 0.357580, 0.180423],
                            [0.212671, 0.715160, 0.072169],
                            [0.019334, 0.119193, 0.950227]])
_WHITE = torch.tensor([0.950456, 1.0, 1.088754])
LAB_OFFSET = (50.0, 0.0, 0.0)
LAB_SCALE = (25.0, 15.0, 15.0)


def rgb_to_lab(rgb: torch.Tensor) -> torch.Tensor:
    """``(..., 3, H, W)`` sRGB in [0, 1] -> CIE Lab (L in [0, 100]), the formulas of OpenCV's ``RGB2Lab``."""
    linear = torch.where(rgb <= 0.04045, rgb / 12.92, ((rgb.clamp(min=0) + 0.055) / 1.055) ** 2.4)
    matrix = (_RGB_TO_XYZ / _WHITE[:, None]).to(rgb)
    xyz = torch.einsum("ij,...jhw->...ihw", matrix, linear)
    f = torch.where(xyz > 0.008856, xyz.clamp(min=1e-12) ** (1.0 / 3.0), 7.787 * xyz + 16.0 / 116.0)
    fx, fy, fz = f.unbind(dim=-3)
    lightness = torch.where(xyz[..., 1, :, :] > 0.008856, 116.0 * fy - 16.0, 903.3 * xyz[..., 1, :, :])
    return torch.stack([lightness, 500.0 * (fx - fy), 200.0 * (fy - fz)], dim=-3)


def colour_targets(frames: torch.Tensor, stride: int = 8) -> torch.Tensor:
    """``(N, 3, H, W)`` RGB in [0, 1] (H, W multiples of ``stride``) -> ``(N, 15, H/stride, W/stride)``: normalised
    Lab of each cell, then of its four quarters (row-major)."""
    lab = rgb_to_lab(frames.float())
    offset = torch.tensor(LAB_OFFSET, device=lab.device).view(1, 3, 1, 1)
    scale = torch.tensor(LAB_SCALE, device=lab.device).view(1, 3, 1, 1)
    lab = (lab - offset) / scale
    cell = F.avg_pool2d(lab, stride)
    quarters = F.pixel_unshuffle(F.avg_pool2d(lab, stride // 2), 2)  # (N, 3 * 4, h, w), channel-major
    return torch.cat([cell, quarters], dim=1)


def window_mask(height: int, width: int, radius: int, device: torch.device | None = None) -> torch.Tensor:
    """``(h*w, h*w)`` bool: True where cell j lies within +-radius cells (Chebyshev) of cell i."""
    ys, xs = torch.meshgrid(torch.arange(height, device=device), torch.arange(width, device=device), indexing="ij")
    ys, xs = ys.reshape(-1), xs.reshape(-1)
    return ((ys[:, None] - ys[None]).abs() <= radius) & ((xs[:, None] - xs[None]).abs() <= radius)


class ColourPropagationLoss(nn.Module):
    """``forward(query, reference, query_colour, reference_colour) -> scalar``.

    query, reference: ``(B, C, h, w)`` features (L2-normalised here); colours ``(B, K, h, w)``. ``radius`` > 0
    limits each query to a window of reference cells (as the evaluation does); 0 lets it read every cell.
    """

    def __init__(self, temperature: float = 0.05, radius: int = 0, huber_delta: float = 0.1) -> None:
        super().__init__()
        if temperature <= 0:
            raise ValueError(f"ColourPropagationLoss: temperature must be > 0, got {temperature}")
        if radius < 0:
            raise ValueError(f"ColourPropagationLoss: radius must be >= 0, got {radius}")
        self.temperature = temperature
        self.radius = radius
        self.huber_delta = huber_delta

    def predict(self, query: torch.Tensor, reference: torch.Tensor, reference_colour: torch.Tensor) -> torch.Tensor:
        """``(B, K, h, w)`` colours read from the reference through the affinity."""
        batch, _, height, width = query.shape
        q = F.normalize(query.float().flatten(2), dim=1)  # (B, C, N)
        r = F.normalize(reference.float().flatten(2), dim=1)
        logits = torch.einsum("bcn,bcm->bnm", q, r) / self.temperature
        if self.radius > 0:
            allowed = window_mask(height, width, self.radius, query.device)
            logits = logits.masked_fill(~allowed, float("-inf"))
        weights = logits.softmax(dim=-1)
        colours = reference_colour.float().flatten(2).transpose(1, 2)  # (B, N, K)
        return (weights @ colours).transpose(1, 2).reshape(batch, -1, height, width)

    @float32_loss
    def forward(self, query: torch.Tensor, reference: torch.Tensor, query_colour: torch.Tensor,
                reference_colour: torch.Tensor) -> torch.Tensor:
        if query.shape != reference.shape or query_colour.shape != reference_colour.shape:
            raise ValueError(f"ColourPropagationLoss: shapes query {tuple(query.shape)}, reference "
                             f"{tuple(reference.shape)}, colours {tuple(query_colour.shape)} / "
                             f"{tuple(reference_colour.shape)}")
        if query.shape[-2:] != query_colour.shape[-2:]:
            raise ValueError(f"ColourPropagationLoss: feature grid {tuple(query.shape[-2:])} differs from the colour "
                             f"grid {tuple(query_colour.shape[-2:])}")
        predicted = self.predict(query, reference, reference_colour)
        return F.huber_loss(predicted, query_colour.float(), delta=self.huber_delta)
