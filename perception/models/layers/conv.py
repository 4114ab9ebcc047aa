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

from perception.models.layers.cast_cache import cached_for


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
            if _fusable(x) and self._act_unobserved():
                weight, shift = self._folded_cast(_conv_dtype(x))
                return _fused_conv_act(x.to(weight.dtype), weight, shift, self.conv, isinstance(self.act, nn.ReLU))
            weight, shift = self._folded()
            conv = self.conv
            return self.act(F.conv2d(x, weight, shift, conv.stride, conv.padding, conv.dilation, conv.groups))
        return self.act(self.norm(self.conv(x)))

    def _folded(self) -> tuple[torch.Tensor, torch.Tensor]:
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
        return self.conv.weight * scale.view(-1, 1, 1, 1), shift

    def _folded_cast(self, dtype: torch.dtype) -> tuple[torch.Tensor, torch.Tensor]:
        """``_folded()`` in ``dtype``, kept between frames while the convolution and norm tensors are unchanged
        (``cast_cache.cached_for``: an adaptation swap, ``load_state_dict`` or any in-place change bumps a version and
        the next call folds again): 9 small ops a unit, each a round trip through the interpreter lock, become one
        comparison."""
        norm = self.norm
        tensors = (self.conv.weight, norm.weight, norm.bias, norm.running_mean, norm.running_var)

        def fold() -> tuple[torch.Tensor, torch.Tensor]:
            weight, shift = self._folded()
            return weight.to(dtype).contiguous(), shift.to(dtype)

        return cached_for(self, tensors, dtype, fold)

    def _act_unobserved(self) -> bool:
        """True when the activation may be fused away: a ReLU or identity that no forward hook is reading now.
        A pre-hook with a false ``active`` attribute (the BN-statistics tracker between measured frames,
        ``perception.adaptation.norm_stats``) does not count."""
        act = self.act
        if not isinstance(act, (nn.ReLU, nn.Identity)) or act._forward_hooks:
            return False
        return not any(getattr(hook, "active", True) for hook in act._forward_pre_hooks.values())


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


# oneDNN's convolution with a fused post-op (``torch.ops.mkldnn._convolution_pointwise``, the kernel torch's own
# inductor emits for conv + ReLU on CPU): the bias and the activation are applied while the output is written,
# instead of a second pass over it. Measured on the 2-core CPU (bf16, one thread): a 1x1 conv 24 -> 48 at 320x240,
# 1.9 ms with F.conv2d + relu_ against 0.8-1.0 ms fused; the dualstream_s local stream at 640x480, 11.5-12.7 ->
# about 7 ms. The post-op is a leaky ReLU of slope LEAK, not oneDNN's ReLU: that one returns 0 for NaN (a max with
# 0), which would hide a poisoned model (NaN weights from a bad update) from the non-finite output check
# (``perception.runtime.resilience``); a slope of 1e-30 keeps NaN and inf flowing as aten's relu does and moves no
# other output by more than 1e-30 of its size.
_MKLDNN_POINTWISE = (torch.backends.mkldnn.is_available()
                     and hasattr(torch.ops.mkldnn, "_convolution_pointwise"))
LEAK = 1e-30


def _fusable(x: torch.Tensor) -> bool:
    """Inference on the CPU without autograd, outside tracing and export (the ONNX graph keeps plain ops)."""
    return (_MKLDNN_POINTWISE and x.device.type == "cpu" and not torch.is_grad_enabled()
            and x.dtype in (torch.float32, torch.bfloat16)
            and not torch.jit.is_tracing() and not torch.jit.is_scripting() and not torch.onnx.is_in_onnx_export())


def _conv_dtype(x: torch.Tensor) -> torch.dtype:
    """The dtype CPU autocast would run a convolution of ``x`` in (the fused op itself is not autocast-aware)."""
    dtype = torch.get_autocast_dtype("cpu") if torch.is_autocast_enabled("cpu") else x.dtype
    return dtype if dtype in (torch.float32, torch.bfloat16) else torch.float32


def _fused_conv_act(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor, conv: nn.Conv2d,
                    relu: bool) -> torch.Tensor:
    """``act(conv2d(x, weight, bias))`` in one oneDNN call; ``x``, ``weight`` and ``bias`` in one dtype."""
    attr, scalars = ("leaky_relu", [LEAK]) if relu else ("none", [])
    return torch.ops.mkldnn._convolution_pointwise(
        x, weight, bias, list(conv.padding), list(conv.stride), list(conv.dilation), conv.groups, attr, scalars, "")
