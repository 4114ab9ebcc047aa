"""The baseline of the speed issue: a DINOv2 ViT-S/14 (our global stream at ViT-S/14 size) on every frame.

Input resolution: the encoder's input (640x480 by default) with its short side at ``short_side`` (448) and both
sides rounded to multiples of the patch (14): 640x480 gives 602x448 (43 x 32 = 1376 patch tokens), the resolution
the issue names. Each frame is resized, normalised with the ImageNet statistics and run through
``forward_features`` in the precision ``runtime.precision: auto`` picks, as our pipeline does: bf16 autocast where
the CPU has AMX, fp32 otherwise (AVX-512 BF16 alone ran ViT-S/14 slower in bf16 than in fp32 here, so this is the
baseline's faster setting; ``perception.runtime.device``).
The weights are random (speed does not depend on them). Because one frame takes 0.3 to 0.6 s on the 2-core CPU
(bf16 with AMX, fp32 without), ``measure_vit_baseline`` times the first ``max_frames`` frames only (after
``warmup`` untimed ones).
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
import torch

from perception.bench.measure import Stopwatch, summary_ms
from perception.runtime.device import LIBRARY_THREADS, autocast, resolve_device, resolve_precision, torch_threads

PATCH = 14
MEAN = (0.485, 0.456, 0.406)
STD = (0.229, 0.224, 0.225)


def baseline_size(width: int, height: int, short_side: int = 448, patch: int = PATCH) -> tuple[int, int]:
    """``(W, H)`` of the ViT input for a ``width x height`` encoder input: short side ``short_side``, aspect kept,
    each side rounded to the nearest multiple of ``patch`` (640x480 -> 602x448)."""
    if width <= 0 or height <= 0:
        raise ValueError(f"baseline_size: {width}x{height}: expected positive sides")
    scale = short_side / min(width, height)
    return (max(1, round(width * scale / patch)) * patch, max(1, round(height * scale / patch)) * patch)


class VitBaseline:
    """``__call__(image)`` -> patch tokens of one RGB uint8 frame; resize, normalise and the ViT-S/14 forward."""

    def __init__(self, size: tuple[int, int], device: str = "cpu", precision: str = "auto") -> None:
        from perception.models.vit import vit_small  # noqa: PLC0415

        torch.manual_seed(0)
        self.device = resolve_device(device)
        self.precision = resolve_precision(precision, self.device)
        self.size = size
        self.model = vit_small().to(self.device).eval()
        self.mean = torch.tensor(MEAN, device=self.device).view(1, 3, 1, 1)
        self.std = torch.tensor(STD, device=self.device).view(1, 3, 1, 1)

    @torch.inference_mode()
    def __call__(self, image: np.ndarray) -> torch.Tensor:
        import cv2  # noqa: PLC0415

        resized = cv2.resize(image, self.size, interpolation=cv2.INTER_AREA)
        x = torch.from_numpy(resized).to(self.device).permute(2, 0, 1)[None].float().div_(255.0)
        x = (x - self.mean) / self.std
        with autocast(self.device, self.precision):
            return self.model.forward_features(x)["x_norm_patchtokens"]


def measure_vit_baseline(frames: Sequence[np.ndarray], encoder_input: tuple[int, int] = (640, 480),
                         max_frames: int = 10, warmup: int = 2, device: str = "cpu", precision: str = "auto",
                         short_side: int = 448, threads: int = 0) -> dict:
    """``fps`` and latency of the baseline over ``frames[warmup : warmup + max_frames]``, with ``threads`` torch
    threads (0: torch's default, all cores)."""
    if len(frames) < warmup + 1:
        raise ValueError(f"baseline: need at least {warmup + 1} frames, got {len(frames)}")
    size = baseline_size(*encoder_input, short_side=short_side)
    baseline = VitBaseline(size, device, precision)
    timed = list(frames[warmup:warmup + max_frames])
    latencies = []
    # every core for the ViT, whatever an earlier part of the run set (the pipeline's auto threads leave one free)
    with torch_threads(threads or LIBRARY_THREADS):
        for image in frames[:warmup]:
            baseline(image)
        with Stopwatch() as watch:
            for image in timed:
                with Stopwatch() as one:
                    baseline(image)
                latencies.append(one.wall_s * 1000.0)
        used = torch.get_num_threads()
    tokens = (size[0] // PATCH) * (size[1] // PATCH)
    return {"fps": round(len(timed) / watch.wall_s, 3), "latency_ms": summary_ms(latencies), "frames": len(timed),
            "input": list(size), "tokens": tokens, "precision": baseline.precision, "torch_threads": used,
            "cpu_ms_per_frame": round(1000.0 * watch.cpu_s / len(timed), 1),
            "load_average": {"before": watch.load_before, "after": watch.load_after}}
