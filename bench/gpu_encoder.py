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


def _time_stream(model, device, batch: int, height: int, width: int, frames: int, dtype) -> list[float]:
    host = torch.rand(frames + 20, batch, 3, height, width).pin_memory() if device.type == "cuda" else None
    state, times = None, []
    for i in range(frames + 20):
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        x = host[i].to(device, non_blocking=True)
        with torch.no_grad(), torch.autocast("cuda", dtype=dtype, enabled=dtype != torch.float32):
            out, state = model.encode(x, state)
        dense = out.dense.float().to("cpu", non_blocking=True)
        end.record()
        end.synchronize()
        if i >= 20:
            times.append(start.elapsed_time(end))
        del dense
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", default="")
    parser.add_argument("--frames", type=int, default=200)
    parser.add_argument("--json", required=True)
    args = parser.parse_args()
    device = torch.device("cuda")
    torch.backends.cudnn.benchmark = True
    if args.checkpoint:
        model, _ = load_checkpoint(args.checkpoint)
    else:
        model = create_encoder("dualstream_s", global_scale=0.25)
    model = model.float().to(device).eval().to(memory_format=torch.channels_last)
    report: dict = {"device": torch.cuda.get_device_name(0), "torch": torch.__version__,
                    "global_every": model.global_every, "global_scale": model.global_scale}
    for name, dtype in (("fp16", torch.float16), ("bf16", torch.bfloat16), ("fp32", torch.float32)):
        report[f"single_1280x720_{name}_ms"] = _percentiles(_time_stream(model, device, 1, 720, 1280,
                                                                          args.frames, dtype))
    cams = {}
    for n in (1, 2, 4, 8, 16, 32, 64):
        ms = _percentiles(_time_stream(model, device, n, 720, 1280, 60, torch.float16))
        cams[n] = ms
        if ms["p95"] > 1000 / 30:
            break
    report["batched_1280x720_fp16_ms"] = cams
    report["cameras_at_30fps"] = max([n for n, ms in cams.items() if ms["p95"] <= 1000 / 30], default=0)
    # baseline: eager fp32 ViT-S/14 on every frame at the same resolution (728x1288 = 52x92 patches)
    vit = vit_small().to(device).eval()
    x = torch.rand(1, 3, 728, 1288, device=device)
    times = []
    for i in range(args.frames + 10):
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        with torch.no_grad():
            vit.forward_features(x) if hasattr(vit, "forward_features") else vit(x)
        end.record()
        end.synchronize()
        if i >= 10:
            times.append(start.elapsed_time(end))
    report["baseline_vit_s14_fp32_eager_1288x728_ms"] = _percentiles(times)
    report["ratio_fps_vs_baseline"] = (report["baseline_vit_s14_fp32_eager_1288x728_ms"]["p50"]
                                       / report["single_1280x720_fp16_ms"]["p50"])
    report["unix"] = time.time()
    with open(args.json, "w") as f:
        json.dump(report, f, indent=1)
    print(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
