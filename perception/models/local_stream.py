"""Local stream: a cheap convolutional stream at stride 8 for colour, texture and edges; runs on every frame.

A MobileNet-style stack (Howard et al., "MobileNets", 2017): a full 3x3 stem at stride 2, then one
depthwise-separable downsampling block per stage to strides 4 and 8, each followed by ``depths[i]`` residual
depthwise-separable blocks. The full-resolution convolution sees the colours directly; later stages add
context without the cost of a deep network. Input ``(B, 3, H, W)`` with H, W multiples of 8, output
``(B, channels[-1], H/8, W/8)``. Run it in ``channels_last`` memory format for speed on CPU (oneDNN).
"""

from __future__ import annotations

from typing import Callable, Sequence

import torch
from torch import nn

from perception.models.layers import ConvNormAct, DepthwiseSeparable


class LocalStream(nn.Module):
    """Three stride-2 stages: stem (stride 2), stage 2 (stride 4), stage 3 (stride 8)."""

    stride = 8

    def __init__(
        self,
        channels: Sequence[int] = (24, 48, 96),
        depths: Sequence[int] = (0, 1, 2),
        in_chans: int = 3,
        stem_fn: Callable[..., nn.Module] = ConvNormAct,
        block_fn: Callable[..., nn.Module] = DepthwiseSeparable,
    ) -> None:
        super().__init__()
        if len(channels) != 3 or len(depths) != 3:
            raise ValueError(f"LocalStream: expected 3 channels and 3 depths, got {channels} and {depths}")
        self.out_channels = int(channels[-1])
        layers: list[nn.Module] = [stem_fn(in_chans, channels[0], kernel_size=3, stride=2)]
        layers += [block_fn(channels[0], channels[0]) for _ in range(depths[0])]
        for i in (1, 2):
            layers.append(block_fn(channels[i - 1], channels[i], stride=2))
            layers += [block_fn(channels[i], channels[i]) for _ in range(depths[i])]
        self.layers = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        height, width = x.shape[-2:]
        if height % self.stride or width % self.stride:
            raise ValueError(f"LocalStream: input {height}x{width} is not a multiple of {self.stride}")
        return self.layers(x)
