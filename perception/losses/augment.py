"""Photometric augmentations that keep geometry fixed, so patch ``i`` of one view is patch ``i`` of another.

Torch functions on batches ``(B, 3, H, W)`` float in [0, 1] (the encoder's input before normalisation), with
per-sample parameters as ``(B,)`` tensors, and random variants drawn from an explicit ``torch.Generator``. The
set follows the SimCLR / BYOL / DINO colour pipeline (Chen et al. 2020; Grill et al. 2020): brightness,
contrast, gamma, Gaussian noise, Gaussian blur; plus block-wise occlusion masks on the patch grid (BEiT, Bao et
al. 2022; iBOT, Zhou et al. 2022) that also serve as the masks of masked-patch objectives.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F


def _per_sample(value: torch.Tensor | float, images: torch.Tensor) -> torch.Tensor:
    v = torch.as_tensor(value, dtype=images.dtype, device=images.device)
    if v.dim() == 0:
        return v
    if v.shape != (images.shape[0],):
        raise ValueError(f"per-sample parameter has shape {tuple(v.shape)}, expected ({images.shape[0]},)")
    return v.view(-1, 1, 1, 1)


def _check_images(images: torch.Tensor, who: str) -> None:
    if images.dim() != 4 or not images.is_floating_point():
        raise ValueError(f"{who}: expected float images (B, C, H, W), got {images.dtype} {tuple(images.shape)}")


def adjust_brightness(images: torch.Tensor, factor: torch.Tensor | float) -> torch.Tensor:
    """``clamp(x * factor, 0, 1)``; factor 1 is the identity."""
    _check_images(images, "adjust_brightness")
    return (images * _per_sample(factor, images)).clamp(0.0, 1.0)


def adjust_contrast(images: torch.Tensor, factor: torch.Tensor | float) -> torch.Tensor:
    """Blend with the per-image mean grey level: ``clamp(m + factor * (x - m), 0, 1)``; factor 0 gives flat grey."""
    _check_images(images, "adjust_contrast")
    grey = images.mean(dim=1, keepdim=True) if images.shape[1] == 1 else (
        0.299 * images[:, 0:1] + 0.587 * images[:, 1:2] + 0.114 * images[:, 2:3])
    mean = grey.mean(dim=(1, 2, 3), keepdim=True)
    return (mean + _per_sample(factor, images) * (images - mean)).clamp(0.0, 1.0)


def adjust_gamma(images: torch.Tensor, gamma: torch.Tensor | float) -> torch.Tensor:
    """``x ** gamma`` (inputs clamped to [0, 1]); gamma < 1 brightens, > 1 darkens."""
    _check_images(images, "adjust_gamma")
    return images.clamp(0.0, 1.0).pow(_per_sample(gamma, images))


def add_gaussian_noise(images: torch.Tensor, std: torch.Tensor | float, generator: torch.Generator | None = None
                       ) -> torch.Tensor:
    """``clamp(x + std * n, 0, 1)``, ``n`` standard normal drawn from ``generator``."""
    _check_images(images, "add_gaussian_noise")
    noise = torch.randn(images.shape, generator=generator, dtype=images.dtype, device=images.device)
    return (images + _per_sample(std, images) * noise).clamp(0.0, 1.0)


def gaussian_kernel1d(sigma: torch.Tensor, radius: int) -> torch.Tensor:
    """``(B,)`` sigmas -> ``(B, 2*radius+1)`` normalised Gaussian kernels (tiny sigmas give a delta)."""
    offsets = torch.arange(-radius, radius + 1, dtype=sigma.dtype, device=sigma.device)
    k = torch.exp(-0.5 * (offsets[None, :] / sigma.clamp(min=1e-3)[:, None]) ** 2)
    return k / k.sum(dim=1, keepdim=True)


def gaussian_blur(images: torch.Tensor, sigma: torch.Tensor | float, radius: int | None = None) -> torch.Tensor:
    """Separable Gaussian blur with per-sample ``sigma`` (pixels), reflect padding; ``radius`` defaults to
    ``ceil(3 * max sigma)``."""
    _check_images(images, "gaussian_blur")
    b, c, h, w = images.shape
    sig = torch.as_tensor(sigma, dtype=images.dtype, device=images.device).expand(b).contiguous()
    r = int(math.ceil(3.0 * float(sig.max()))) if radius is None else radius
    r = max(0, min(r, h - 1, w - 1))
    if r == 0:
        return images.clone()
    k = gaussian_kernel1d(sig, r).repeat_interleave(c, dim=0)                      # (B*C, 2r+1)
    x = images.reshape(1, b * c, h, w)
    x = F.conv2d(F.pad(x, (r, r, 0, 0), mode="reflect"), k[:, None, None, :], groups=b * c)
    x = F.conv2d(F.pad(x, (0, 0, r, r), mode="reflect"), k[:, None, :, None], groups=b * c)
    return x.reshape(b, c, h, w)


def random_block_mask(batch: int, grid: tuple[int, int], ratio: float | tuple[float, float],
                      generator: torch.Generator | None = None, min_block: int = 1,
                      aspect: tuple[float, float] = (0.3, 1 / 0.3)) -> torch.Tensor:
    """Block-wise masks ``(B, gh, gw)`` bool on the patch grid (BEiT): rectangles of random area and aspect are
    added until each mask covers the sampled fraction (``ratio``, or drawn from the range ``ratio``) of the grid.
    ``generator`` must be a CPU generator; masks are CPU tensors."""
    gh, gw = grid
    lo, hi = (ratio, ratio) if isinstance(ratio, (int, float)) else ratio
    if not 0.0 <= lo <= hi <= 1.0:
        raise ValueError(f"random_block_mask: ratio must lie in [0, 1] with low <= high, got {ratio}")
    masks = torch.zeros(batch, gh, gw, dtype=torch.bool)
    log_lo, log_hi = math.log(aspect[0]), math.log(aspect[1])
    for i in range(batch):
        frac = lo + (hi - lo) * float(torch.rand((), generator=generator))
        target = round(frac * gh * gw)
        for _ in range(100):
            count = int(masks[i].sum())
            if count >= target:
                break
            area = max(min_block, int(float(torch.empty(()).uniform_(min_block, max(min_block, target - count),
                                                                       generator=generator))))
            ar = math.exp(float(torch.empty(()).uniform_(log_lo, log_hi, generator=generator)))
            bh = max(1, min(gh, round(math.sqrt(area * ar))))
            bw = max(1, min(gw, round(math.sqrt(area / ar))))
            top = int(torch.randint(0, gh - bh + 1, (), generator=generator))
            left = int(torch.randint(0, gw - bw + 1, (), generator=generator))
            masks[i, top:top + bh, left:left + bw] = True
    return masks


def apply_occlusion(images: torch.Tensor, mask: torch.Tensor, fill: float | torch.Tensor = 0.5) -> torch.Tensor:
    """Paint ``fill`` where the patch-grid ``mask (B, gh, gw)`` is set, each cell covering ``H/gh x W/gw`` pixels
    (nearest upsampling to ``(H, W)``)."""
    _check_images(images, "apply_occlusion")
    if mask.dim() != 3 or mask.shape[0] != images.shape[0]:
        raise ValueError(f"apply_occlusion: mask shape {tuple(mask.shape)}, expected (B={images.shape[0]}, gh, gw)")
    pix = F.interpolate(mask[:, None].float(), size=images.shape[-2:], mode="nearest").to(images.device) > 0.5
    return torch.where(pix, torch.as_tensor(fill, dtype=images.dtype, device=images.device), images)


@dataclass
class PhotometricAugment:
    """Random photometric augmentation of a batch; ``__call__(images, generator) -> images`` (same shape).

    Factors are drawn per sample: brightness and contrast in ``[1 - s, 1 + s]``, gamma log-uniform in
    ``gamma``, blur applied with probability ``blur_prob`` with sigma in ``blur_sigma`` (pixels), noise std in
    ``[0, noise_std]``. A strength of 0 disables that step. Geometry is never changed.
    """

    brightness: float = 0.4
    contrast: float = 0.4
    gamma: tuple[float, float] = (0.7, 1.5)
    noise_std: float = 0.03
    blur_prob: float = 0.5
    blur_sigma: tuple[float, float] = (0.1, 2.0)

    def __call__(self, images: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        _check_images(images, "PhotometricAugment")
        b, dev = images.shape[0], images.device

        gen_dev = generator.device if generator is not None else torch.device("cpu")

        def uniform(lo: float, hi: float) -> torch.Tensor:
            return (lo + (hi - lo) * torch.rand(b, generator=generator, device=gen_dev)).to(dev, images.dtype)

        x = images
        if self.brightness > 0:
            x = adjust_brightness(x, uniform(1 - self.brightness, 1 + self.brightness))
        if self.contrast > 0:
            x = adjust_contrast(x, uniform(1 - self.contrast, 1 + self.contrast))
        if self.gamma != (1.0, 1.0):
            x = adjust_gamma(x, uniform(math.log(self.gamma[0]), math.log(self.gamma[1])).exp())
        if self.blur_prob > 0:
            apply = torch.rand(b, generator=generator, device=gen_dev).to(dev) < self.blur_prob
            sigma = torch.where(apply, uniform(*self.blur_sigma), torch.zeros((), dtype=x.dtype, device=dev))
            if apply.any():
                x = gaussian_blur(x, sigma)
        if self.noise_std > 0:
            x = add_gaussian_noise(x, uniform(0.0, self.noise_std), _device_generator(generator, dev))
        return x


def _device_generator(generator: torch.Generator | None, device: torch.device) -> torch.Generator | None:
    """A generator usable on ``device``: the given one when devices match, else one seeded from it."""
    if generator is None or generator.device.type == device.type:
        return generator
    g = torch.Generator(device=device)
    g.manual_seed(int(torch.randint(0, 2 ** 62, (), generator=generator, device=generator.device)))
    return g
