"""Three cameras on one GPU: one model batched (``MultiCameraPerceiver``) against three ``Perceiver`` copies (what
three perception_node processes hold). Prints JSON: GPU memory after loading and at peak, and per-step latency
(one frame from every camera, preprocess to results on the host, detector included), in one process on one device.

    python bench/multi_camera_gpu.py [--encoder dualstream_s] [--checkpoint PATH] [--frames 60] [--json OUT]
"""

from __future__ import annotations

import argparse
import gc
import json
import time

import numpy as np
import torch

from perception.config import load_config
from perception.io.synthetic import SyntheticScene
from perception.runtime.multi_camera import MultiCameraPerceiver
from perception.runtime.perceiver import Perceiver

CAMERAS = ("front", "left", "right")


def _mib(n: int) -> float:
    return round(n / 2**20, 1)


def _measure(step, frames: int, warmup: int = 5) -> dict:
    times = []
    for k in range(warmup + frames):
        torch.cuda.synchronize()
        t = time.perf_counter()
        step(k)
        torch.cuda.synchronize()
        if k >= warmup:
            times.append((time.perf_counter() - t) * 1000.0)
    a = np.asarray(times)
    return {"step_ms_p50": round(float(np.percentile(a, 50)), 2), "step_ms_p95": round(float(np.percentile(a, 95)), 2),
            "camera_fps": round(len(CAMERAS) * 1000.0 / float(a.mean()), 1)}


def run(args: argparse.Namespace) -> dict:
    overrides = [f"encoder.name={args.encoder}", "runtime.device=cuda", f"runtime.precision={args.precision}",
                 "runtime.publish_debug=false", "runtime.publish_pca=false", "runtime.warmup_frames=0"]
    if args.checkpoint:
        overrides.append(f"encoder.checkpoint={args.checkpoint}")
    cfg = load_config(None, overrides)
    clips = {c: [f for f in SyntheticScene(width=640, height=480, num_frames=16, seed=i)]
             for i, c in enumerate(CAMERAS)}
    out: dict = {"device": torch.cuda.get_device_name(), "encoder": args.encoder, "precision": args.precision,
                 "frames": args.frames, "cameras": len(CAMERAS), "resolution": "640x480"}

    torch.cuda.reset_peak_memory_stats()
    base = torch.cuda.memory_allocated()
    multi = MultiCameraPerceiver(Perceiver(cfg), CAMERAS)
    loaded = torch.cuda.memory_allocated() - base
    out["one_model_batched"] = {"weights_mib": _mib(loaded), **_measure(
        lambda k: multi.process({c: clips[c][k % 16] for c in CAMERAS}), args.frames),
        "peak_mib": _mib(torch.cuda.max_memory_allocated() - base), "batches": dict(multi.batches)}
    del multi
    gc.collect()
    torch.cuda.empty_cache()

    torch.cuda.reset_peak_memory_stats()
    base = torch.cuda.memory_allocated()
    copies = {c: Perceiver(cfg) for c in CAMERAS}
    loaded = torch.cuda.memory_allocated() - base
    out["three_copies_sequential"] = {"weights_mib": _mib(loaded), **_measure(
        lambda k: [copies[c].process(clips[c][k % 16], stream=c) for c in CAMERAS], args.frames),
        "peak_mib": _mib(torch.cuda.max_memory_allocated() - base)}
    a, b = out["one_model_batched"], out["three_copies_sequential"]
    out["weights_ratio"] = round(b["weights_mib"] / max(a["weights_mib"], 1e-6), 2)
    out["speedup_batched"] = round(b["step_ms_p50"] / a["step_ms_p50"], 2)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--encoder", default="dualstream_s")
    parser.add_argument("--checkpoint", default="")
    parser.add_argument("--precision", default="fp16")
    parser.add_argument("--frames", type=int, default=60)
    parser.add_argument("--json", default="")
    args = parser.parse_args()
    result = run(args)
    text = json.dumps(result, indent=2)
    print(text)
    if args.json:
        with open(args.json, "w") as f:
            f.write(text + "\n")


if __name__ == "__main__":
    main()
