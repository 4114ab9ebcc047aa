"""GPU timing of the encoder (issue 8's device check): one camera at 1280x720, several cameras batched, and the eager
fp32 ViT-S/14 baseline on every frame, in one process on one device. Prints JSON.

    python bench/gpu_encoder.py [--checkpoint models/dualstream_s.safetensors] [--frames 200] --json OUT

Latency is per streamed frame (``encode`` with state; keyframes every ``global_every``) after warm-up, measured with
CUDA events around host-to-device copy, encoder and device-to-host copy of the dense map. Cameras served: the
largest N (from 1, 2, 4, ...) whose batched step (N frames, one per camera, per-camera state in one batch) takes
under 1/30 s at p95, i.e. N cameras at 30 fps with under 5 percent of steps late.
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np
import torch

from perception.models import create_encoder
from perception.models.checkpoint import load_checkpoint
from perception.models.vit import vit_small


def _percentiles(ms: list[float]) -> dict:
    a = np.asarray(ms)
    return {"p50": float(np.percentile(a, 50)), "p95": float(np.percentile(a, 95)),
            "p99": float(np.percentile(a, 99)), "mean": float(a.mean())}


class _Timer:
    """Milliseconds of a region: CUDA events on a GPU (device work included), perf_counter on the CPU."""

    def __init__(self, device: torch.device) -> None:
        self.cuda = device.type == "cuda"

    def __enter__(self) -> "_Timer":
        if self.cuda:
            self.start, self.end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            self.start.record()
        else:
            self.t0 = time.perf_counter()
        return self

    def __exit__(self, *exc) -> None:
        if self.cuda:
            self.end.record()
            self.end.synchronize()
            self.ms = self.start.elapsed_time(self.end)
        else:
            self.ms = (time.perf_counter() - self.t0) * 1e3


def _time_stream(model, device, batch: int, height: int, width: int, frames: int, dtype, warmup: int = 10
                 ) -> list[float]:
    """Per-step milliseconds of streaming ``batch`` cameras: copy in, ``encode`` with state, dense map out."""
    pool = [torch.rand(batch, 3, height, width) for _ in range(4)]  # a few distinct frames, cycled
    if device.type == "cuda":
        pool = [x.pin_memory() for x in pool]
    state, times = None, []
    for i in range(frames + warmup):
        with _Timer(device) as timer:
            x = pool[i % len(pool)].to(device, non_blocking=True)
            with torch.no_grad(), torch.autocast(device.type, dtype=dtype, enabled=dtype != torch.float32):
                out, state = model.encode(x, state)
            out.dense.float().to("cpu", non_blocking=True)
        if i >= warmup:
            times.append(timer.ms)
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", default="")
    parser.add_argument("--frames", type=int, default=200)
    parser.add_argument("--json", required=True)
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--size", default="1280x720", help="WxH of the frames")
    parser.add_argument("--max-cameras", type=int, default=32)
    args = parser.parse_args()
    device = torch.device(args.device)
    width, height = (int(v) for v in args.size.split("x"))
    torch.backends.cudnn.benchmark = True
    if args.checkpoint:
        model, _ = load_checkpoint(args.checkpoint)
    else:
        model = create_encoder("dualstream_s", global_scale=0.25)
    model = model.float().to(device).eval().to(memory_format=torch.channels_last)
    report: dict = {"device": torch.cuda.get_device_name(0) if device.type == "cuda" else "cpu",
                    "torch": torch.__version__, "size": [width, height],
                    "global_every": model.global_every, "global_scale": model.global_scale}
    half = torch.float16 if device.type == "cuda" else torch.bfloat16
    for name, dtype in (("half", half), ("fp32", torch.float32)):
        report[f"single_{name}_ms"] = _percentiles(_time_stream(model, device, 1, height, width, args.frames, dtype))
    cams: dict[int, dict] = {}
    n = 1
    while n <= args.max_cameras:
        ms = _percentiles(_time_stream(model, device, n, height, width, 40, half))
        cams[n] = ms
        if ms["p95"] > 1000 / 30:
            break
        n *= 2
    report["batched_half_ms"] = cams
    report["cameras_at_30fps"] = max([k for k, ms in cams.items() if ms["p95"] <= 1000 / 30], default=0)
    # baseline: eager fp32 ViT-S/14 on every frame at the same resolution, rounded up to whole patches
    vit = vit_small().to(device).eval()
    x = torch.rand(1, 3, -(-height // 14) * 14, -(-width // 14) * 14, device=device)
    times = []
    for i in range(args.frames + 5):
        with _Timer(device) as timer, torch.no_grad():
            vit(x)
        if i >= 5:
            times.append(timer.ms)
    report["baseline_vit_s14_fp32_ms"] = _percentiles(times)
    report["ratio_vs_baseline"] = report["baseline_vit_s14_fp32_ms"]["p50"] / report["single_half_ms"]["p50"]
    report["unix"] = time.time()
    with open(args.json, "w") as f:
        json.dump(report, f, indent=1)
    print(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
