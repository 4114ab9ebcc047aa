"""Issue 8's device check, in one process on one GPU: the encoder at 1280x720 (eager and compiled), cameras served at
30 fps, the eager fp32 ViT-S/14 baseline, and the whole default pipeline with adaptation off and on. Prints JSON.

    python bench/gpu_encoder.py --json OUT [--checkpoint models/dualstream_s.safetensors] [--video CLIP]

Parts (each one's keys in the JSON):

- ``single``: one camera, frames of ``--size`` (1280x720) encoded at that size with the default schedule
  (``EncoderConfig``'s keyframe interval, global scale, stages and query pooling). Per frame: the uint8 frame from
  pinned memory to the device (non-blocking), to float and normalised there, ``encode`` with state, the dense map
  back to the host. p50/p95/p99 from CUDA events, after warm-up, over ``--frames`` frames (whole keyframe cycles).
  Variants: eager fp32, eager fp16, and fp16 with the local stream and the fusion compiled by ``torch.compile``
  (``default`` mode: fused Triton kernels; ``reduce-overhead``: the same replayed as CUDA graphs). Each compiled
  variant's dense map is compared with eager fp16 on the same frames (``max_abs_diff_vs_eager``).
- ``cameras``: N cameras at 30 fps with synchronised triggers, served in real time by one model: each period every
  camera's newest frame replaces its unserved one (latest-only); the server takes every camera's newest frame as
  one batch (per-camera state in the batch), copies, encodes and copies back. A frame replaced before it was taken
  is dropped. N doubles from 1 until 5 percent or more are dropped, then the largest N under 5 percent is
  searched between the last two. ``cameras_at_30fps`` is that N.
- ``baseline_vit_s14_fp32``: DINOv2 ViT-S/14 (random weights: speed only), eager fp32, on every frame at the same
  size rounded up to whole patches (1288x728); ``ratio_vs_baseline`` is its p50 over the best fp16 variant's p50.
- ``pipeline``: the default ``Perceiver`` and stream monitor (what ``perception_node`` runs: preprocessing to the
  640x480 encoder input, encoder on the GPU in fp16, detection and monitor on the CPU) on real frames (``--video``,
  resized to ``--size``), adaptation off and then on (its updates on their own CUDA stream); fps, latency, and
  ``adaptation_on_off`` = fps on / fps off.
- ``tensorrt``: whether a TensorRT Python package could be imported here (the engine is built only then).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import time

import cv2
import numpy as np
import torch

from perception.config import EncoderConfig
from perception.models.vit import vit_small
from perception.runtime.gpu import COMPILE_MODES, compile_encoder, new_graph_step
from perception.runtime.model_loading import load_encoder

PERIOD_S = 1.0 / 30.0


def _percentiles(ms: list[float]) -> dict:
    a = np.asarray(ms, dtype=np.float64)
    return {k: round(float(np.percentile(a, q)), 3) for k, q in (("p50", 50), ("p95", 95), ("p99", 99))} | {
        "mean": round(float(a.mean()), 3), "n": int(a.size)}


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _frames(video: str, count: int, width: int, height: int) -> list[np.ndarray]:
    """``count`` RGB frames of ``video`` resized to ``width x height`` (looped if it is shorter); random noise frames
    when no video is given."""
    if not video:
        rng = np.random.default_rng(0)
        return [rng.integers(0, 256, (height, width, 3), dtype=np.uint8) for _ in range(count)]
    cap = cv2.VideoCapture(video)
    frames: list[np.ndarray] = []
    while len(frames) < count:
        ok, bgr = cap.read()
        if not ok:
            if not frames:
                raise RuntimeError(f"--video {video}: no frame could be decoded")
            cap.set(cv2.CAP_PROP_POS_FRAMES, 0)
            continue
        frames.append(cv2.cvtColor(cv2.resize(bgr, (width, height), interpolation=cv2.INTER_LINEAR), cv2.COLOR_BGR2RGB))
    cap.release()
    return frames


class Server:
    """Frames in, dense map out, for a batch of cameras with state: pinned uint8 -> device -> float -> ``encode``."""

    def __init__(self, model: torch.nn.Module, device: torch.device, dtype: torch.dtype, graphs: bool = False) -> None:
        self.model, self.device, self.dtype, self.graphs = model, device, dtype, graphs
        self.state = None

    def reset(self) -> None:
        self.state = None

    def step(self, batch_hwc: torch.Tensor) -> torch.Tensor:
        x = batch_hwc.to(self.device, non_blocking=True).permute(0, 3, 1, 2).float().div_(255.0)
        x = x.contiguous(memory_format=torch.channels_last)
        if self.graphs:  # CUDA graphs replay into the same memory: a new frame, the last one's outputs are dead
            new_graph_step()
        with torch.inference_mode(), torch.autocast(self.device.type, dtype=self.dtype,
                                                    enabled=self.dtype != torch.float32):
            out, self.state = self.model.encode(x, self.state)
        return out.dense.float().to("cpu", non_blocking=True)


def _pinned(frames: list[np.ndarray], batch: int, device: torch.device) -> list[torch.Tensor]:
    """Batches of ``batch`` frames (camera k sees frame i + k), in pinned host memory on a GPU machine."""
    out = []
    for i in range(len(frames)):
        t = torch.from_numpy(np.stack([frames[(i + k) % len(frames)] for k in range(batch)]))
        out.append(t.pin_memory() if device.type == "cuda" else t)
    return out


def time_single(server: Server, pool: list[torch.Tensor], frames: int, warmup: int) -> dict:
    """Per-frame ms of one camera (CUDA events on a GPU)."""
    server.reset()
    cuda = server.device.type == "cuda"
    times = []
    for i in range(frames + warmup):
        if cuda:
            start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            start.record()
        t0 = time.perf_counter()
        server.step(pool[i % len(pool)])
        if cuda:
            end.record()
            end.synchronize()
            ms = start.elapsed_time(end)
        else:
            ms = (time.perf_counter() - t0) * 1e3
        if i >= warmup:
            times.append(ms)
    return _percentiles(times)


def max_difference(a: Server, b: Server, pool: list[torch.Tensor], frames: int = 20) -> dict:
    """Largest difference between the dense maps of two servers fed the same ``frames`` frames from a fresh state
    (a whole staged global run included), and that difference relative to the largest value."""
    a.reset()
    b.reset()
    worst, scale = 0.0, 0.0
    for i in range(frames):
        da, db = a.step(pool[i % len(pool)]), b.step(pool[i % len(pool)])
        _sync(a.device)
        worst, scale = max(worst, float((da - db).abs().max())), max(scale, float(da.abs().max()))
    return {"max_abs_diff_vs_eager": worst, "max_abs_value": scale}


def serve_realtime(server: Server, pool: list[torch.Tensor], periods: int) -> dict:
    """N cameras with synchronised 30 Hz triggers, latest-only, served in real time; see the module docstring."""
    server.reset()
    for i in range(6):  # warm the batch size (allocator, kernel choice, compilation, graph capture) off the clock
        server.step(pool[i % len(pool)])
    _sync(server.device)
    batch = pool[0].shape[0]
    taken, dropped, latency = -1, 0, []
    t0 = time.perf_counter()
    while taken < periods - 1:
        newest = min(int((time.perf_counter() - t0) / PERIOD_S), periods - 1)
        if newest <= taken:
            time.sleep(max(0.0, t0 + (taken + 1) * PERIOD_S - time.perf_counter()))
            continue
        dropped += (newest - taken - 1) * batch
        server.step(pool[newest % len(pool)])
        _sync(server.device)
        latency.append((time.perf_counter() - (t0 + newest * PERIOD_S)) * 1e3)
        taken = newest
    published = periods * batch
    return {"cameras": batch, "published": published, "dropped": dropped, "drop_rate": round(dropped / published, 4),
            "latency_ms": _percentiles(latency)}


def cameras_at_30fps(server: Server, frames: list[np.ndarray], periods: int, max_cameras: int) -> dict:
    runs: dict[int, dict] = {}

    def run(n: int) -> bool:
        runs[n] = serve_realtime(server, _pinned(frames[:4], n, server.device), periods)
        print(f"cameras {n}: drop rate {runs[n]['drop_rate']:.3f}, latency p99 {runs[n]['latency_ms']['p99']:.1f} ms",
              flush=True)
        return runs[n]["drop_rate"] < 0.05

    good, n = 0, 1
    while n <= max_cameras and run(n):
        good, n = n, n * 2
    bad = n if n <= max_cameras else None
    while bad is not None and bad - good > max(1, good // 8):  # bisect to within an eighth
        mid = (good + bad) // 2
        good, bad = (mid, bad) if run(mid) else (good, mid)
    return {"cameras_at_30fps": good, "runs": {str(k): v for k, v in sorted(runs.items())}}


def compiled_copy(model: torch.nn.Module, mode: str) -> torch.nn.Module:
    """``model`` with the runtime's ``runtime.compile`` applied (``perception.runtime.gpu``), ``mode`` given by its
    ``torch.compile`` name (``default``: inductor, ``reduce-overhead``: CUDA graphs; the JSON keys keep these names)."""
    setting = {torch_mode: name for name, torch_mode in COMPILE_MODES.items() if torch_mode}[mode]
    compile_encoder(model, setting)
    return model


def _encoder(args: argparse.Namespace, device: torch.device, width: int, height: int) -> torch.nn.Module:
    cfg = dataclasses.replace(EncoderConfig(), input_width=width, input_height=height,
                              **({"checkpoint": args.checkpoint} if args.checkpoint else {}))
    return load_encoder(cfg, device).model.eval().to(memory_format=torch.channels_last)


def pipeline_part(args: argparse.Namespace, frames: list[np.ndarray], device: torch.device) -> dict:
    """The default Perceiver + monitor on ``frames``, adaptation off then on (perception.bench.pipeline_speed)."""
    from perception.bench.pipeline_speed import build_perceiver  # noqa: PLC0415
    from perception.config import load_config  # noqa: PLC0415
    from perception.io.frame import Frame  # noqa: PLC0415
    from perception.runtime.run_config import RunConfig  # noqa: PLC0415

    overrides = [f"runtime.device={device}", f"runtime.precision={args.precision}"]
    if args.checkpoint:
        overrides.append(f"encoder.checkpoint={args.checkpoint}")
    report: dict = {}
    runs = [("adaptation_off", False, "none"), ("adaptation_on", True, "none")]
    runs += [(f"compile_{mode}", False, mode) for mode in args.pipeline_compile.split(",") if mode]
    for name, adapt, mode in runs:
        cfg = load_config(None, overrides + [f"adaptation.enabled={str(adapt).lower()}", f"runtime.compile={mode}"],
                          cls=RunConfig)
        processor, adapter = build_perceiver(cfg, adaptation=adapt)
        for i in range(8):
            processor.process(Frame(image=frames[i], stamp_ns=i, seq=i))
        processor.perceiver.reset()
        lat = []
        started = time.perf_counter()
        for i, image in enumerate(frames):
            t0 = time.perf_counter()
            processor.process(Frame(image=image, stamp_ns=i, seq=i))
            lat.append((time.perf_counter() - t0) * 1e3)
        wall = time.perf_counter() - started
        report[name] = {"fps": round(len(frames) / wall, 2), "latency_ms": _percentiles(lat),
                        "precision": processor.perceiver.precision, "device": str(processor.perceiver.device),
                        "weights": processor.perceiver.encoder_source,
                        "adapter": adapter.stats() if adapter is not None else None}
        if adapter is not None:
            adapter.stop(save=False)
    report["adaptation_on_off"] = round(report["adaptation_on"]["fps"] / report["adaptation_off"]["fps"], 3)
    return report


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", default="", help="default: the shipped checkpoint, as the nodes load it")
    parser.add_argument("--video", default="", help="real frames for the pipeline part (default: noise)")
    parser.add_argument("--frames", type=int, default=320, help="timed frames per single-camera variant")
    parser.add_argument("--pipeline-frames", type=int, default=300, help="frames per pipeline run")
    parser.add_argument("--periods", type=int, default=90, help="30 Hz periods per camera count")
    parser.add_argument("--max-cameras", type=int, default=128)
    parser.add_argument("--size", default="1280x720", help="WxH of the frames")
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--precision", default="fp16")
    parser.add_argument("--compile", default="default,reduce-overhead", help="torch.compile modes to time ('' none)")
    parser.add_argument("--parts", default="single,cameras,baseline,pipeline")
    parser.add_argument("--cameras-compile", default="", help="also search cameras with this torch.compile mode")
    parser.add_argument("--pipeline-compile", default="inductor,cuda_graphs",
                        help="runtime.compile modes of the Perceiver to time in the pipeline part ('' none)")
    parser.add_argument("--json", required=True)
    args = parser.parse_args()
    device = torch.device(args.device)
    width, height = (int(v) for v in args.size.split("x"))
    torch.backends.cudnn.benchmark = True
    half = torch.float16 if args.precision == "fp16" else torch.bfloat16
    report: dict = {"device": torch.cuda.get_device_name(0) if device.type == "cuda" else "cpu",
                    "torch": torch.__version__, "size": [width, height]}
    save = lambda: open(args.json, "w").write(json.dumps(report, indent=1))  # noqa: E731 (partial results survive)
    frames = _frames(args.video, max(16, args.pipeline_frames), width, height)
    pool = _pinned(frames[:8], 1, device)
    model = _encoder(args, device, width, height)
    report["schedule"] = {"global_every": model.global_every, "global_scale": model.global_scale,
                          "global_stages": model.global_stages}
    single: dict = {}
    single["eager_fp32"] = time_single(Server(model, device, torch.float32), pool, args.frames, 16)
    eager = Server(model, device, half)
    single["eager_half"] = time_single(eager, pool, args.frames, 16)
    print("single", json.dumps(single), flush=True)
    save()
    for mode in [m for m in args.compile.split(",") if m]:
        started = time.perf_counter()
        try:
            compiled = compiled_copy(_encoder(args, device, width, height), mode)
            server = Server(compiled, device, half, graphs=mode == "reduce-overhead")
            single[f"compiled_{mode}_half"] = time_single(server, pool, args.frames, 32)
            single[f"compiled_{mode}_half"].update(max_difference(eager, server, pool, model.global_every + 4))
        except Exception as exc:  # a compiler failure is a result, not the end of the check
            single[f"compiled_{mode}_half"] = {"error": f"{type(exc).__name__}: {exc}"[:500]}
        single[f"compiled_{mode}_half"]["compile_and_time_s"] = round(time.perf_counter() - started, 1)
        print(mode, json.dumps(single[f"compiled_{mode}_half"]), flush=True)
        save()
    report["single"] = single
    best = min((k for k in single if "p50" in single[k] and k != "eager_fp32"), key=lambda k: single[k]["p50"])
    report["best_single"] = best

    parts = args.parts.split(",")
    if "cameras" in parts:
        report["cameras"] = cameras_at_30fps(Server(model, device, half), frames, args.periods, args.max_cameras)
        if args.cameras_compile:  # the same search with the per-frame parts compiled (one graph per batch size)
            torch._dynamo.config.cache_size_limit = max(64, torch._dynamo.config.cache_size_limit)
            compiled = compiled_copy(_encoder(args, device, width, height), args.cameras_compile)
            server = Server(compiled, device, half, graphs=args.cameras_compile == "reduce-overhead")
            report[f"cameras_compiled_{args.cameras_compile}"] = cameras_at_30fps(server, frames, args.periods,
                                                                                  args.max_cameras)
        save()
    if "baseline" in parts:
        baseline(report, args, device, width, height)
        save()
    if "pipeline" in parts:
        report["pipeline"] = pipeline_part(args, frames, device)
        save()
    try:
        import tensorrt  # noqa: F401, PLC0415

        report["tensorrt"] = {"available": True, "version": tensorrt.__version__}
    except ImportError as exc:
        report["tensorrt"] = {"available": False, "why": str(exc)}
    report["unix"] = time.time()
    save()
    print(json.dumps(report, indent=1))


def baseline(report: dict, args: argparse.Namespace, device: torch.device, width: int, height: int) -> None:
    """Eager fp32 ViT-S/14 on every frame at the frames' size rounded up to whole patches, and the ratios."""
    vit = vit_small().to(device).eval()
    x = torch.rand(1, 3, -(-height // 14) * 14, -(-width // 14) * 14, device=device)
    times = []
    with torch.inference_mode():
        for i in range(args.frames // 2 + 8):
            _sync(device)
            t0 = time.perf_counter()
            vit(x)
            _sync(device)
            if i >= 8:
                times.append((time.perf_counter() - t0) * 1e3)
    report["baseline_vit_s14_fp32"] = _percentiles(times) | {"input": list(x.shape[-2:])[::-1]}
    single = report["single"]
    report["ratio_vs_baseline"] = round(report["baseline_vit_s14_fp32"]["p50"] / single[report["best_single"]]["p50"], 2)
    report["ratio_vs_baseline_eager_half"] = round(report["baseline_vit_s14_fp32"]["p50"] / single["eager_half"]["p50"], 2)


if __name__ == "__main__":
    main()
