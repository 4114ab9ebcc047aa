"""``InputAffine``: a per-channel affine on the encoder's normalised input, initialised to the identity.

Photometric shifts (less light, lower contrast, haze) act on the image roughly as a per-channel affine map
``x -> a * x + b``; a learned inverse of it is the cheapest adapter that targets them directly (three gains and three
biases, applied before both streams; cf. the input-level adaptation of "test-time training" and the colour-constancy
front ends of classic vision pipelines). ``attach_input_adapter(model)`` adds it to an encoder as the submodule
``input_adapter`` (so its parameters are named ``input_adapter.log_gain`` / ``input_adapter.bias`` and the
``norm+adapters`` subset picks them up) and puts it in front of the encoder's ``local_stream`` and
``global_stream`` with forward pre-hooks, so the encoder's own code is untouched and a deep copy of the model keeps a
working adapter. At the identity it changes nothing: the output equals the source model's exactly.

Sensor noise is the other shift a camera meets that a front end can undo: ``smooth`` (a scalar, 0 at the identity)
mixes each frame with a Gaussian blur of itself, ``y -> y + smooth * (blur(y) - y)`` (sigma ``SMOOTH_SIGMA`` pixels
at the served resolution), the learned strength of a denoising filter. It is trained by the noise term of the
exposure objective (``ExposureLoss``) on crops at the served resolution, and is left alone by the luma terms (they
see the affine only), so exposure and noise are corrected independently.
"""

from __future__ import annotations

import torch
from torch import nn

from perception.losses.augment import gaussian_blur

STREAMS = ("local_stream", "global_stream")
SMOOTH_SIGMA, SMOOTH_RADIUS = 1.0, 2  # pixels: 5 taps, +-2 sigma


class InputAffine(nn.Module):
    """The pixel-space map ``p -> exp(log_gain) * p + bias`` per channel (``p`` in [0, 1], gain pivoting on black,
    so dimming is undone by the gain alone and haze by gain and a negative bias), applied to the encoder's
    normalised input ``x = (p - mean) / std``: ``x -> g * x + ((g - 1) * mean + bias) / std``. ``log_gain`` and
    ``bias`` start at 0 (the identity), so both move on the same scale of pixel units under one learning rate."""

    def __init__(self, mean: torch.Tensor, std: torch.Tensor, channels: int = 1) -> None:
        super().__init__()
        if channels not in (1, mean.numel()):
            raise ValueError(f"InputAffine: channels must be 1 (one gain and bias for all, colour-preserving) or "
                             f"{mean.numel()}, got {channels}")
        self.log_gain = nn.Parameter(torch.zeros(channels))
        self.bias = nn.Parameter(torch.zeros(channels))
        self.smooth = nn.Parameter(torch.zeros(1))
        self.register_buffer("mean", mean.detach().reshape(-1).clone().float(), persistent=False)
        self.register_buffer("std", std.detach().reshape(-1).clone().float(), persistent=False)

    def is_identity(self) -> bool:
        return bool(torch.all(self.log_gain == 0) and torch.all(self.bias == 0) and torch.all(self.smooth == 0))

    def blur(self, x: torch.Tensor) -> torch.Tensor:
        """Gaussian blur of ``(B, C, H, W)`` per channel, sigma ``SMOOTH_SIGMA``, 5 taps, edges reflected."""
        return gaussian_blur(x, SMOOTH_SIGMA, radius=SMOOTH_RADIUS)

    def smoothed(self, p: torch.Tensor) -> torch.Tensor:
        """The smoothing alone, ``p + smooth * (blur(p) - p)`` (what the noise term measures)."""
        return p + self.smooth.to(p.dtype) * (self.blur(p) - p)

    def pixel(self, p: torch.Tensor) -> torch.Tensor:
        """The map on pixels ``(B, C, H, W)`` in [0, 1] (what the exposure objective measures)."""
        view = (1, -1, 1, 1)
        return p * self.log_gain.exp().view(view) + self.bias.view(view)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        gain = self.log_gain.exp()
        shift = ((gain - 1.0) * self.mean + self.bias) / self.std     # broadcasts a shared gain/bias
        y = x * gain.to(x.dtype).view(1, -1, 1, 1) + shift.to(x.dtype).view(1, -1, 1, 1)
        if torch.is_grad_enabled() or bool(self.smooth != 0):          # served unsmoothed: no blur passes
            y = self.smoothed(y)
        return y

    def pre_hook(self, module: nn.Module, args: tuple) -> tuple | None:
        """Forward pre-hook of a stream: its first argument (the normalised frames) through the affine. Served
        without gradients at the identity (an unshifted stream keeps it there), the frames pass untouched: the same
        values without two full-frame passes (about 1 ms CPU a stream at 640x480 on this CPU)."""
        if not torch.is_grad_enabled() and self.is_identity():
            return None
        return (self(args[0]), *args[1:])


def attach_input_adapter(model: nn.Module, channels: int = 1) -> InputAffine | None:
    """The model's ``input_adapter`` (added and hooked on the first call); None for a model without the streams."""
    existing = getattr(model, "input_adapter", None)
    if isinstance(existing, InputAffine):
        return existing
    streams = [getattr(model, name, None) for name in STREAMS]
    streams = [s for s in streams if isinstance(s, nn.Module)]
    if not streams:
        return None
    device = next(model.parameters()).device
    mean = getattr(model, "mean", torch.zeros(3))
    std = getattr(model, "std", torch.ones(3))
    adapter = InputAffine(mean, std, channels).to(device)
    model.add_module("input_adapter", adapter)
    for stream in streams:
        stream.register_forward_pre_hook(adapter.pre_hook)
    return adapter
