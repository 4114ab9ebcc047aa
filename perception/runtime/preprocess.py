"""Frame preprocessing: ``(H, W, 3)`` uint8 RGB numpy -> ``(1, 3, H', W')`` float tensor in [0, 1] on the device.

Sizing (documented once, here): the frame is scaled by ``s = min(1, input_width / W, input_height / H)``, so it
fits inside the configured encoder input with its aspect ratio kept and is never enlarged (a small frame keeps one
feature cell per 8x8 input pixels and costs less), then each side is rounded to the nearest multiple of the
encoder stride (8) so that the dense map has exactly ``H'/8 x W'/8`` cells. Rounding makes the two
axes' scales differ by under half a stride, so both are returned: a box ``(x, y, w, h)`` in encoder pixels maps
back to input pixels as ``(x / sx, y / sy, w / sx, h / sy)``. A size of 0 in the config keeps the native size
(rounded to the stride). A 640x480 frame with the default 640x480 input is not resized at all.

The steps are fused for speed: one ``cv2.resize`` on uint8 (INTER_AREA when shrinking below ``AREA_BELOW`` = 0.75
of the size, where bilinear sampling would skip pixels and alias; INTER_LINEAR otherwise: a 768x576 -> 640x480
shrink took 3.1 ms with INTER_AREA and 0.6 ms with INTER_LINEAR, one thread, on the 2-core CPU, where each
output pixel spans 1.2 input pixels and the bilinear taps already cover it), one ``torch.from_numpy`` (zero
copy), one transfer, one division on the device, and a ``channels_last`` view (the NCHW tensor built from NHWC
memory is already channels_last, so no copy). Normalisation (mean/std) belongs to the encoder, which on the CPU
hands its mean and std to the preprocessor: then a lookup table does the division and the normalisation in one pass
(``Preprocessor``), and the [0, 1] tensor is made only if something asks for it (the online adapter).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from typing import Sequence

import cv2
import numpy as np
import torch

STRIDE = 8
AREA_BELOW = 0.75  # resizes to under this fraction of a side average pixels (INTER_AREA)


def unit_tensor(nhwc: torch.Tensor) -> torch.Tensor:
    """``(1, H, W, 3)`` uint8 -> ``(1, 3, H, W)`` float32 in [0, 1], channels_last (a view of NHWC memory)."""
    return nhwc.permute(0, 3, 1, 2).float().div_(255.0).contiguous(memory_format=torch.channels_last)


@dataclass(frozen=True)
class Preprocessed:
    """image: the resized ``(H', W', 3)`` uint8 frame. scale_x, scale_y: ``W' / W`` and ``H' / H``. input_size,
    encoder_size: ``(width, height)``. normalised: ``(1, 3, H', W')`` float32 ``(x - mean) / std``, channels_last,
    when the preprocessor normalises (see :class:`Preprocessor`), else None. ``tensor``: the frame in [0, 1], the same
    layout, on the device (made on first use when ``normalised`` is given). ``encoder_input``: what the encoder
    takes, ``normalised`` or ``tensor``."""

    image: np.ndarray
    scale_x: float
    scale_y: float
    input_size: tuple[int, int]
    encoder_size: tuple[int, int]
    device: torch.device
    normalised: torch.Tensor | None = None

    @cached_property
    def tensor(self) -> torch.Tensor:
        return unit_tensor(torch.from_numpy(self.image).unsqueeze(0).to(self.device))  # uint8 over the bus

    @property
    def encoder_input(self) -> torch.Tensor:
        return self.tensor if self.normalised is None else self.normalised


def _round_to(n: float, multiple: int) -> int:
    return max(multiple, int(round(n / multiple)) * multiple)


def encoder_size(width: int, height: int, input_width: int, input_height: int, stride: int = STRIDE) -> tuple[int, int]:
    """``(W', H')``: the frame shrunk to fit inside ``input_width x input_height`` (aspect kept, never enlarged),
    sides rounded to multiples of ``stride``."""
    if width <= 0 or height <= 0:
        raise ValueError(f"frame size {width}x{height}: expected positive sides")
    if input_width < 0 or input_height < 0:
        raise ValueError(f"encoder input {input_width}x{input_height}: expected sizes >= 0 (0 keeps the native size)")
    scales = [t / s for t, s in ((input_width, width), (input_height, height)) if t > 0]
    scale = min([1.0, *scales])
    return _round_to(width * scale, stride), _round_to(height * scale, stride)


def interpolation(width: int, height: int, out_w: int, out_h: int) -> int:
    """OpenCV interpolation for a resize: INTER_AREA for a strong shrink (either side below ``AREA_BELOW``),
    INTER_LINEAR for a mild one, for stride rounding and for enlarging."""
    strong = out_w < AREA_BELOW * width or out_h < AREA_BELOW * height
    return cv2.INTER_AREA if strong else cv2.INTER_LINEAR


def scale_boxes_to_input(boxes: np.ndarray, scale_x: float, scale_y: float) -> np.ndarray:
    """``(N, 4)`` xywh boxes in encoder pixels -> float32 xywh in input pixels."""
    boxes = np.asarray(boxes, dtype=np.float32).reshape(-1, 4)
    factors = np.array([1.0 / scale_x, 1.0 / scale_y, 1.0 / scale_x, 1.0 / scale_y], np.float32)
    return boxes * factors


class Preprocessor:
    """Turns frames into encoder input for one device and one configured input size. Given the encoder's ``mean``
    and ``std`` (3 values each) on the CPU, it also normalises: one ``cv2.LUT`` maps each uint8 channel value
    to ``v / 255 * (1 / std) - mean / std`` in float32, the encoder's ``normalise`` arithmetic (they agree to float
    rounding), in 0.84 ms at 640x480 on the 2-core CPU (one thread), against 3.0 ms for the division, the
    encoder's multiply-add and autocast's bf16 copy of that strided 3-channel tensor."""

    def __init__(self, device: torch.device | str = "cpu", input_width: int = 640, input_height: int = 480,
                 stride: int = STRIDE, mean: Sequence[float] | None = None, std: Sequence[float] | None = None) -> None:
        self.device = torch.device(device)
        self.input_width = int(input_width)
        self.input_height = int(input_height)
        self.stride = int(stride)
        self.mean, self.std = mean, std
        self.lut: np.ndarray | None = None
        self.upload = None
        if self.device.type == "cuda":
            from perception.runtime.gpu import PinnedUpload  # noqa: PLC0415

            self.upload = PinnedUpload(self.device)  # page-locked staging, non-blocking copies
        if mean is not None and std is not None and self.device.type == "cpu":
            m, sd = np.asarray(mean, np.float32), np.asarray(std, np.float32)
            if m.shape != (3,) or sd.shape != (3,) or not (sd > 0).all():
                raise ValueError(f"preprocess: mean and std must be 3 values, std > 0; got {mean!r}, {std!r}")
            scale = np.float32(1.0) / sd
            levels = np.arange(256, dtype=np.float32)[:, None] / np.float32(255.0)
            self.lut = (levels * scale + (-m * scale)).astype(np.float32).reshape(1, 256, 3)

    def resized(self, input_width: int, input_height: int) -> "Preprocessor":
        """The same preprocessing for another input size."""
        return Preprocessor(self.device, input_width, input_height, self.stride, self.mean, self.std)

    def __call__(self, image: np.ndarray) -> Preprocessed:
        if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
            raise ValueError(f"preprocess: expected an (H, W, 3) uint8 RGB image, got {image.shape} {image.dtype}")
        height, width = image.shape[:2]
        out_w, out_h = encoder_size(width, height, self.input_width, self.input_height, self.stride)
        if (out_w, out_h) != (width, height):
            image = cv2.resize(image, (out_w, out_h), interpolation=interpolation(width, height, out_w, out_h))
        image = np.ascontiguousarray(image)
        normalised = None
        if self.lut is not None:  # (H', W', 3) float32, viewed as NCHW channels_last without a copy
            normalised = torch.from_numpy(cv2.LUT(image, self.lut)).unsqueeze(0).permute(0, 3, 1, 2)
        pre = Preprocessed(image, out_w / width, out_h / height, (width, height), (out_w, out_h), self.device,
                           normalised)
        if self.upload is not None:  # the cached property filled through the pinned upload
            pre.__dict__["tensor"] = unit_tensor(self.upload(image))
        elif normalised is None:
            pre.tensor  # noqa: B018 - made now, on this thread (the timing of the preprocess stage includes it)
        return pre
