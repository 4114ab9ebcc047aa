"""Fixed 2-D sine-cosine position encoding (Vaswani et al. 2017, extended to 2-D as in MAE, He et al. 2022).

Coordinates are the cell centres normalised to [0, 1] of the grid, so grids of different resolution over the
same image (the stride-8 local map and the stride-14 global tokens at another scale) share one frame of
reference: a local cell and the global token above it get similar codes.
"""

from __future__ import annotations

import math
from functools import lru_cache

import torch


def sincos_2d(height: int, width: int, dim: int, device: torch.device | str | None = None) -> torch.Tensor:
    """``(1, height*width, dim)`` float32 code of a ``height`` x ``width`` grid, rows first; ``dim % 4 == 0``.

    Results are cached per (size, dim, device) and shared: treat the returned tensor as read-only."""
    return _cached(int(height), int(width), int(dim), str(torch.device(device or "cpu")))


@lru_cache(maxsize=64)
def _cached(height: int, width: int, dim: int, device: str) -> torch.Tensor:
    with torch.inference_mode(False), torch.no_grad():
        return _compute(height, width, dim, torch.device(device))


def _compute(height: int, width: int, dim: int, device: torch.device) -> torch.Tensor:
    if dim % 4:
        raise ValueError(f"sincos_2d: dim must be a multiple of 4, got {dim}")
    quarter = dim // 4
    # Frequencies from 1 to about 1/64 of a full turn over the image: coarse enough for [0, 1] coordinates.
    freqs = torch.exp(torch.arange(quarter, device=device, dtype=torch.float32) * (-math.log(64.0) / quarter))
    freqs = freqs * (2.0 * math.pi)
    ys = (torch.arange(height, device=device, dtype=torch.float32) + 0.5) / height
    xs = (torch.arange(width, device=device, dtype=torch.float32) + 0.5) / width
    gy, gx = torch.meshgrid(ys, xs, indexing="ij")
    ay = gy.reshape(-1, 1) * freqs
    ax = gx.reshape(-1, 1) * freqs
    code = torch.cat([ay.sin(), ay.cos(), ax.sin(), ax.cos()], dim=1)
    return code.unsqueeze(0)
