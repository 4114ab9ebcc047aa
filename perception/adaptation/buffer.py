"""``FrameBuffer``: a bounded ring of recent frames for online adaptation, and clips sampled from it.

Frames arrive as the encoder's input: the ``(H, W, 3)`` uint8 RGB image (what the perceiver has anyway) or an
``(1, 3, H, W)`` / ``(3, H, W)`` float tensor in [0, 1] (quantised first, ``frame_image``); they are resized to the
training size (OpenCV's area interpolation: 0.2 ms for 640x480 where the antialiased torch resize of the float frame
took 2.7) and kept as uint8 on the CPU, so the memory is ``capacity * 3 * h * w`` bytes whatever the camera.
Clips are ``clip_length`` frames ``t, t+g, t+2g, ...`` in arrival order, ``g`` drawn from ``gaps`` among those that
fit, so the temporal objective sees adjacent frames and frames further apart (as the test-time training on video
streams of Wang et al. 2023 trains on a sliding window of recent frames). Only statistics leave the buffer when
the adapter's state is saved, never the frames.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence

import cv2
import numpy as np
import torch


def frame_image(frame: np.ndarray | torch.Tensor) -> np.ndarray:
    """The frame as an ``(H, W, 3)`` uint8 array: an uint8 image as it is, a float tensor in [0, 1] quantised."""
    if isinstance(frame, np.ndarray):
        if frame.ndim != 3 or frame.shape[2] != 3 or frame.dtype != np.uint8:
            raise ValueError(f"expected an (H, W, 3) uint8 image, got {frame.shape} {frame.dtype}")
        return frame
    x = frame if frame.dim() == 4 else frame.unsqueeze(0)
    if x.shape[0] != 1 or x.shape[1] != 3:
        raise ValueError(f"expected (1, 3, H, W) or (3, H, W), got {tuple(frame.shape)}")
    with torch.no_grad():
        return (x[0].detach().float().clamp(0, 1) * 255.0).round().to(torch.uint8).permute(1, 2, 0).cpu().numpy()


def _chw(image: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(image.transpose(2, 0, 1)))


class FrameBuffer:
    """``push(frame)``; ``sample_clip(length, gaps, generator) -> (T, 3, h, w)`` float in [0, 1]."""

    def __init__(self, capacity: int, size: tuple[int, int], detail: tuple[int, int] | None = None) -> None:
        if capacity < 2:
            raise ValueError(f"FrameBuffer: capacity must be >= 2, got {capacity}")
        if detail is not None and min(detail) < 3:
            raise ValueError(f"FrameBuffer: detail crops need at least 3x3 pixels, got {detail}")
        self.capacity = int(capacity)
        self.size = (int(size[0]), int(size[1]))  # (h, w)
        self.detail = (int(detail[0]), int(detail[1])) if detail is not None else None
        self._frames: list[torch.Tensor] = []
        self._details: list[torch.Tensor] = []
        self._next = 0          # slot the next frame goes to once full
        self.pushed = 0
        self._lock = threading.Lock()
        self._sum = 0.0
        self._sq = 0.0

    def __len__(self) -> int:
        return len(self._frames)

    def _resized(self, image: np.ndarray) -> torch.Tensor:
        if image.shape[:2] != self.size:
            image = cv2.resize(image, (self.size[1], self.size[0]), interpolation=cv2.INTER_AREA)
        return _chw(image)

    def _crop(self, image: np.ndarray) -> torch.Tensor:
        """The centre ``detail`` crop of ``image`` at its own resolution (the whole side where it is shorter)."""
        height, width = image.shape[:2]
        ch, cw = min(height, self.detail[0]), min(width, self.detail[1])
        top, left = (height - ch) // 2, (width - cw) // 2
        return _chw(image[top:top + ch, left:left + cw])

    def push(self, frame: np.ndarray | torch.Tensor) -> None:
        """Add one frame (copied; an inference-mode tensor is fine), replacing the oldest when full."""
        try:
            image = frame_image(frame)
        except ValueError as exc:
            raise ValueError(f"FrameBuffer.push: {exc}") from None
        with torch.inference_mode(False):
            stored = self._resized(image)
            crop = self._crop(image) if self.detail is not None else None
        value = float(stored.float().mean()) / 255.0
        with self._lock:
            if len(self._frames) < self.capacity:
                self._frames.append(stored)
                if crop is not None:
                    self._details.append(crop)
            else:
                self._frames[self._next] = stored
                if crop is not None:
                    self._details[self._next] = crop
            self._next = (self._next + 1) % self.capacity
            self.pushed += 1
            self._sum += value
            self._sq += value * value

    def ordered(self, details: bool = False) -> list[torch.Tensor]:
        """The stored frames (or their detail crops), oldest first."""
        with self._lock:
            return self._ordered_locked(self._details if details else self._frames)

    def sample_clip(self, length: int, gaps: Sequence[int], generator: torch.Generator | None = None,
                    detail: bool = False) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor | None]:
        """``length`` frames at a random start with a gap from ``gaps`` that fits; ``(T, 3, h, w)`` float. With
        ``detail``: ``(clip, crops)``, the same frames' detail crops ``(T, 3, ch, cw)`` in [0, 1] (None when the
        buffer keeps none, or when the picked frames' crops differ in size after a change of resolution)."""
        with self._lock:
            frames, crops = self._ordered_locked(self._frames), self._ordered_locked(self._details)
        fitting = [g for g in gaps if (length - 1) * g < len(frames)]
        if not fitting:
            raise ValueError(f"FrameBuffer.sample_clip: {len(frames)} frames hold no clip of {length} at gaps "
                             f"{list(gaps)}")
        gap = fitting[int(torch.randint(len(fitting), (1,), generator=generator))]
        span = (length - 1) * gap
        start = int(torch.randint(len(frames) - span, (1,), generator=generator))
        indices = [start + i * gap for i in range(length)]
        clip = torch.stack([frames[i] for i in indices]).float() / 255.0
        if not detail:
            return clip
        picked = [crops[i] for i in indices] if len(crops) == len(frames) else []
        if not picked or len({tuple(c.shape) for c in picked}) != 1:
            return clip, None
        return clip, torch.stack(picked).float() / 255.0

    def _ordered_locked(self, items: list[torch.Tensor]) -> list[torch.Tensor]:
        if len(items) < self.capacity:
            return list(items)
        return items[self._next:] + items[:self._next]

    def statistics(self) -> dict[str, float | int]:
        """Counts and the mean/std intensity of every frame pushed (saved with the adapter's state)."""
        with self._lock:
            n = max(self.pushed, 1)
            mean = self._sum / n
            var = max(self._sq / n - mean * mean, 0.0)
            return {"pushed": self.pushed, "stored": len(self._frames), "capacity": self.capacity,
                    "mean_intensity": mean, "std_intensity": var ** 0.5}

    def load_statistics(self, stats: dict) -> None:
        """Restore the running statistics (not the frames) from ``statistics()``."""
        with self._lock:
            self.pushed = int(stats.get("pushed", 0))
            mean = float(stats.get("mean_intensity", 0.0))
            std = float(stats.get("std_intensity", 0.0))
            self._sum = mean * self.pushed
            self._sq = (std * std + mean * mean) * self.pushed
