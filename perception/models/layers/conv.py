"""Convolution blocks of the local stream.

``ConvNormAct``: convolution, BatchNorm, activation (the basic unit of ResNet, He et al. 2016).
``DepthwiseSeparable``: a depthwise 3x3 followed by a pointwise 1x1, each with BatchNorm and activation
(MobileNet, Howard et al. 2017), with an identity shortcut when the shape is kept (as in MobileNetV2's
inverted residuals, Sandler et al. 2018). BatchNorm keeps the online adaptation's "normalisation parameters"
in one place (TENT, Wang et al. 2021, adapts exactly these affine parameters).
"""

from __future__ import annotations

from typing import Callable

import torch
import torch.nn.functional as F
from torch import nn


class ConvNormAct(nn.Module):
    """``conv`` (no bias) -> ``norm`` -> ``act``; padding keeps the size for stride 1, halves it for stride 2."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int = 3,
        stride: int = 1,
        groups: int = 1,
        norm_layer: Callable[[int], nn.Module] = nn.BatchNorm2d,
        act_layer: Callable[[], nn.Module] = nn.ReLU,
    ) -> None:
        super().__init__()
        self.conv = nn.Conv2d(
            in_channels, out_channels, kernel_size, stride, padding=kernel_size // 2, groups=groups, bias=False
        )
        self.norm = norm_layer(out_channels)
        self.act = act_layer()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training and isinstance(self.norm, nn.BatchNorm2d) and self.norm.track_running_stats:
            return self.act(self._folded_conv(x))
        return self.act(self.norm(self.conv(x)))

    def _folded_conv(self, x: torch.Tensor) -> torch.Tensor:
        """Inference: BatchNorm folded into the convolution (one pass over the activations instead of two).
        ``w' = w * g / sqrt(var + eps)``, ``b' = beta - mean * g / sqrt(var + eps)``; recomputed each call (the
        weights are tiny), so online updates of the norm parameters take effect at once."""
        norm = self.norm
        scale = torch.rsqrt(norm.running_var + norm.eps)
        if norm.weight is not None:
            scale = scale * norm.weight
        shift = -norm.running_mean * scale
        if norm.bias is not None:
            shift = shift + norm.bias
        weight = self.conv.weight * scale.view(-1, 1, 1, 1)
        conv = self.conv
        return F.conv2d(x, weight, shift, conv.stride, conv.padding, conv.dilation, conv.groups)


class DepthwiseSeparable(nn.Module):
    """Depthwise ``kernel_size`` conv (stride ``stride``) then pointwise 1x1; residual when shapes match."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        stride: int = 1,
        kernel_size: int = 3,
        norm_layer: Callable[[int], nn.Module] = nn.BatchNorm2d,
        act_layer: Callable[[], nn.Module] = nn.ReLU,
    ) -> None:
        super().__init__()
        self.dw = ConvNormAct(in_channels, in_channels, kernel_size, stride, in_channels, norm_layer, act_layer)
        self.pw = ConvNormAct(in_channels, out_channels, 1, 1, 1, norm_layer, act_layer)
        self.use_residual = stride == 1 and in_channels == out_channels

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.pw(self.dw(x))
        return x + out if self.use_residual else out
