"""``FrameBuffer``: a bounded ring of recent frames for online adaptation, and clips sampled from it.

Frames arrive as the encoder's input ``(1, 3, H, W)`` or ``(3, H, W)`` floats in [0, 1]; they are resized to the
training size and kept as uint8 on the CPU, so the memory is ``capacity * 3 * h * w`` bytes whatever the camera.
Clips are ``clip_length`` frames ``t, t+g, t+2g, ...`` in arrival order, ``g`` drawn from ``gaps`` among those that
fit, so the temporal objective sees adjacent frames and frames further apart (as the test-time training on video
streams of Wang et al. 2023 trains on a sliding window of recent frames). Only statistics leave the buffer when
the adapter's state is saved, never the frames.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence

import torch
import torch.nn.functional as F


class FrameBuffer:
    """``push(frame)``; ``sample_clip(length, gaps, generator) -> (T, 3, h, w)`` float in [0, 1]."""

    def __init__(self, capacity: int, size: tuple[int, int]) -> None:
        if capacity < 2:
            raise ValueError(f"FrameBuffer: capacity must be >= 2, got {capacity}")
        self.capacity = int(capacity)
        self.size = (int(size[0]), int(size[1]))  # (h, w)
        self._frames: list[torch.Tensor] = []
        self._next = 0          # slot the next frame goes to once full
        self.pushed = 0
        self._lock = threading.Lock()
        self._sum = 0.0
        self._sq = 0.0

    def __len__(self) -> int:
        return len(self._frames)

    @torch.no_grad()
    def _to_uint8(self, frame: torch.Tensor) -> torch.Tensor:
        x = frame if frame.dim() == 4 else frame.unsqueeze(0)
        if x.shape[0] != 1 or x.shape[1] != 3:
            raise ValueError(f"FrameBuffer.push: expected (1, 3, H, W) or (3, H, W), got {tuple(frame.shape)}")
        x = x.detach().float()
        if tuple(x.shape[-2:]) != self.size:
            x = F.interpolate(x, size=self.size, mode="bilinear", align_corners=False, antialias=True)
        return (x[0].clamp(0, 1) * 255.0).round().to(torch.uint8).cpu()

    def push(self, frame: torch.Tensor) -> None:
        """Add one frame (copied; an inference-mode tensor is fine), replacing the oldest when full."""
        with torch.inference_mode(False):
            stored = self._to_uint8(frame).clone()
        value = float(stored.float().mean()) / 255.0
        with self._lock:
            if len(self._frames) < self.capacity:
                self._frames.append(stored)
            else:
                self._frames[self._next] = stored
            self._next = (self._next + 1) % self.capacity
            self.pushed += 1
            self._sum += value
            self._sq += value * value

    def ordered(self) -> list[torch.Tensor]:
        """The stored frames, oldest first."""
        with self._lock:
            if len(self._frames) < self.capacity:
                return list(self._frames)
            return self._frames[self._next:] + self._frames[:self._next]

    def sample_clip(self, length: int, gaps: Sequence[int], generator: torch.Generator | None = None
                    ) -> torch.Tensor:
        """``length`` frames at a random start with a gap from ``gaps`` that fits; ``(T, 3, h, w)`` float."""
        frames = self.ordered()
        fitting = [g for g in gaps if (length - 1) * g < len(frames)]
        if not fitting:
            raise ValueError(f"FrameBuffer.sample_clip: {len(frames)} frames hold no clip of {length} at gaps "
                             f"{list(gaps)}")
        gap = fitting[int(torch.randint(len(fitting), (1,), generator=generator))]
        span = (length - 1) * gap
        start = int(torch.randint(len(frames) - span, (1,), generator=generator))
        picked = [frames[start + i * gap] for i in range(length)]
        return torch.stack(picked).float() / 255.0

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
