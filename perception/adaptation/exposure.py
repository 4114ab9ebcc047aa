"""``ExposureLoss``: label-free exposure and contrast targets for the input adapter (``InputAffine``).

The photometric shifts a camera meets (dusk, under-exposure, haze, low contrast; the ``lowlight``, ``fog`` and
``lowcontrast`` shifts of ``perception.eval.shifts``) move the global luma mean and RMS contrast of every frame far
outside the range of natural footage, while a change of scene hardly does: on DAVIS and vtest frames the luma mean
stays in 0.43-0.64 and the contrast in 0.14-0.20, and under those shifts the contrast drops to 0.04-0.07. So the
adapted input ``p' = InputAffine.pixel(p)`` of the buffered frames is pulled back into a band around a reference
(the statistics of the ImageNet-normalised images the encoder expects: mean 0.45, contrast 0.2) with squared hinges,
``relu(|ln(s / s_ref)| - ln(std_factor))^2 + (relu(|m - m_ref| - mean_margin) / s_ref)^2``, so footage within the
band gets no gradient at all and an unshifted stream is served by the source model unchanged (the automatic
exposure and gain control of a camera pipeline, made a differentiable test-time objective; cf. EATA's rule of
updating only on samples that need it, Niu et al. 2022). It needs no forward pass of the network.

With ``noise_max`` > 0 a third hinge, ``(relu(n - noise_max) / noise_scale)^2``, pulls Immerkaer's noise estimate
``n`` (grey levels, of the luma) of the input adapter's smoothing (``InputAffine.smoothed``) below ``noise_max``.
It is measured on the buffer's detail crops, at the resolution the frames were served at: clean 96x128 centre
crops of vtest measure 1.3-2.8 there, of DAVIS at half size 3.5-6.5 (texture counts as noise on a small crop), and
under the ``noise`` shift 10.2-18.9, so the default bar of 8 leaves clean footage without a gradient. Only ``smooth`` receives it (the estimate is taken without the affine, which would otherwise darken a
noisy frame to hide its noise).
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from perception.adaptation.buffer import frame_image
from perception.monitor.image_quality import IMMERKAER_KERNEL, noise_sigma

LUMA = (0.2126, 0.7152, 0.0722)  # Rec. 709


def luma(pixels: torch.Tensor) -> torch.Tensor:
    """``(B, 3, H, W)`` RGB -> ``(B, H, W)`` Rec. 709 luma."""
    return torch.einsum("bchw,c->bhw", pixels, torch.tensor(LUMA, device=pixels.device, dtype=pixels.dtype))


def noise_level(pixels: torch.Tensor) -> torch.Tensor:
    """Immerkaer's (1996) noise standard deviation of the luma of ``(B, 3, H, W)`` in [0, 1], in grey levels
    (0-255), over the whole batch; differentiable (the stream monitor's estimate, in torch)."""
    kernel = torch.from_numpy(IMMERKAER_KERNEL).to(pixels.device, pixels.dtype).view(1, 1, 3, 3)
    response = F.conv2d(luma(pixels).unsqueeze(1), kernel)
    return 255.0 * math.sqrt(math.pi / 2.0) / 6.0 * response.abs().mean()


class ExposureLoss(nn.Module):
    """``forward(model, clip (T, 3, h, w) in [0, 1], detail=None) -> (loss, (mean, contrast, noise))`` of the model's
    adapted input; ``detail``: crops at the served resolution for the noise term (noise is nan without them).

    The luma hinges start only when needed (hysteresis): while the input affine is at the identity they are off
    unless the raw clip is outside a wider trigger band (``trigger_margin`` about ``mean``, a factor
    ``trigger_factor`` about ``std``); once the affine has moved they pull into the narrower band whatever the raw
    clip. Natural footage varies more than a frame-by-frame band allows (parkour opens at contrast 0.131, under
    ``std / std_factor`` = 0.138, and its luma mean reaches 0.65) and should not be adapted, while the shifts leave
    the trigger band by far (contrast 0.04-0.07) and are then corrected back to the narrow band's edge. With
    ``luma=False`` the hinges are off altogether and only the noise term trains the adapter."""

    def __init__(self, mean: float = 0.45, std: float = 0.2, mean_margin: float = 0.22,
                 std_factor: float = 1.45, noise_max: float = 0.0, noise_scale: float = 4.0,
                 trigger_margin: float | None = None, trigger_factor: float | None = None,
                 luma: bool = True) -> None:
        super().__init__()
        trigger_margin = mean_margin if trigger_margin is None else trigger_margin
        trigger_factor = std_factor if trigger_factor is None else trigger_factor
        if not (std > 0 and std_factor >= 1 and mean_margin >= 0 and noise_max >= 0 and noise_scale > 0
                and trigger_margin >= mean_margin and trigger_factor >= std_factor):
            raise ValueError(f"ExposureLoss: need std > 0, std_factor >= 1, mean_margin >= 0, noise_max >= 0, "
                             f"noise_scale > 0, trigger_margin >= mean_margin, trigger_factor >= std_factor; got "
                             f"{std}, {std_factor}, {mean_margin}, {noise_max}, {noise_scale}, {trigger_margin}, "
                             f"{trigger_factor}")
        self.mean, self.std, self.mean_margin = float(mean), float(std), float(mean_margin)
        self.log_factor = math.log(std_factor)
        self.noise_max, self.noise_scale = float(noise_max), float(noise_scale)
        self.trigger_margin, self.trigger_log_factor = float(trigger_margin), math.log(trigger_factor)
        self.luma = bool(luma)

    def triggered(self, adapter: nn.Module, clip: torch.Tensor) -> bool:
        """Whether the luma hinges are on for ``clip``: the affine has left the identity, or the raw clip is
        outside the trigger band."""
        with torch.no_grad():
            if bool(adapter.log_gain.any() or adapter.bias.any()):
                return True
            y = luma(clip.float())
            mean, contrast = float(y.mean()), max(float(y.std(unbiased=False)), 1e-6)
        return (abs(mean - self.mean) > self.trigger_margin
                or abs(math.log(contrast / self.std)) > self.trigger_log_factor)

    def forward(self, model: nn.Module, clip: torch.Tensor,  # type: ignore[override]
                detail: torch.Tensor | None = None) -> tuple[torch.Tensor, tuple[float, float, float]]:
        adapter = getattr(model, "input_adapter", None)
        if adapter is None:
            raise ValueError(f"ExposureLoss: {type(model).__name__} has no input_adapter "
                             "(AdaptationConfig.input_adapter must be true for exposure_weight > 0)")
        pixels = adapter.pixel(clip.float())
        y = luma(pixels)
        mean, contrast = y.mean(), y.std(unbiased=False).clamp_min(1e-6)
        std_term = F.relu((contrast / self.std).log().abs() - self.log_factor).pow(2)
        mean_term = (F.relu((mean - self.mean).abs() - self.mean_margin) / self.std).pow(2)
        # off: multiplied by 0, so the graph (and the noise term's gradient) stays and the affine's gradient is 0
        on = self.luma and self.triggered(adapter, clip)
        loss, noise = (std_term + mean_term) * float(on), float("nan")
        if self.noise_max > 0 and detail is not None and min(detail.shape[-2:]) >= 3:
            level = noise_level(adapter.smoothed(detail.float()))
            loss = loss + (F.relu(level - self.noise_max) / self.noise_scale).pow(2)
            noise = float(level.detach())
        return loss, (float(mean.detach()), float(contrast.detach()), noise)


class ExposureBand:
    """A band of natural footage as a test on raw frames: ``band(frame) -> bool`` for an ``(H, W, 3)`` uint8 image
    (or ``(1, 3, H, W)`` in [0, 1]), True while the frame's luma mean is more than ``mean_margin`` from ``mean`` or
    its RMS contrast more than a factor ``std_factor`` from ``std`` (``math.inf``: contrast ignored), with
    hysteresis: once outside, it stays True until the frame is back inside half the band (a frame near the edge does
    not flicker). Measured on every 4th pixel each way; no network forward. ``noise_max`` > 0 (grey levels) also
    calls a frame outside while Immerkaer's luma noise estimate (the stream monitor's, on a centre crop) is above it
    (until it is below half). Gates the adapter's BN-statistics tracking (``AdaptationConfig.norm_stats_gated``, with
    the exposure objective's trigger band): statistics move only under a detected photometric shift."""

    def __init__(self, mean: float = 0.45, std: float = 0.2, mean_margin: float = 0.22,
                 std_factor: float = 1.45, step: int = 4, noise_max: float = 0.0) -> None:
        if not (std > 0 and std_factor > 1 and mean_margin > 0 and step >= 1 and noise_max >= 0):
            raise ValueError(f"ExposureBand: need std > 0, std_factor > 1, mean_margin > 0, step >= 1; got {std}, "
                             f"{std_factor}, {mean_margin}, {step} (noise_max >= 0: {noise_max})")
        self.mean, self.std, self.mean_margin, self.step = float(mean), float(std), float(mean_margin), int(step)
        self.noise_max = float(noise_max)
        self.noise = float("nan")
        self.log_factor = math.log(std_factor)
        self.outside = False
        self.last: tuple[float, float] = (float("nan"), float("nan"))

    def stats(self, frame: np.ndarray | torch.Tensor) -> tuple[float, float]:
        """Luma mean and RMS contrast of ``frame`` (an ``(H, W, 3)`` uint8 image, or ``(1, 3, H, W)`` / ``(3, H, W)``
        in [0, 1]) on [0, 1]."""
        image = frame_image(frame)[::self.step, ::self.step]
        luma = image.astype(np.float32) @ (np.asarray(LUMA, np.float32) / 255.0)
        return float(luma.mean()), float(luma.std())

    def is_outside(self, mean: float, contrast: float, scale: float = 1.0) -> bool:
        return (abs(mean - self.mean) > scale * self.mean_margin
                or abs(math.log(max(contrast, 1e-6) / self.std)) > scale * self.log_factor)

    def __call__(self, frame: np.ndarray | torch.Tensor) -> bool:
        image = frame_image(frame)
        self.last = self.stats(image)
        scale = 0.5 if self.outside else 1.0
        outside = self.is_outside(*self.last, scale)
        if self.noise_max > 0:
            self.noise = 255.0 * noise_sigma(image)                    # a centre crop of the uint8 image
            outside = outside or self.noise > scale * self.noise_max
        self.outside = outside
        return self.outside

    def reset(self) -> None:
        self.outside = False

