"""Small measurement helpers shared by the benchmarks: percentiles, peak memory, CPU time, machine and load.

Timings on a shared machine are noisy (PERF_NOTES: about 15 percent, with 1.5 to 3x slow runs when other jobs run),
so every benchmark reports the load average next to its numbers and its CPU time per frame: the CPU time a frame
costs hardly changes with the load, while the wall time does, so ``cpu_ms_per_frame`` says what an idle machine of
the same kind would do for a single-threaded stage.
"""

from __future__ import annotations

import os
import platform
import resource
import time
from dataclasses import dataclass, field
from typing import Iterator, Sequence

import numpy as np


def summary_ms(values: Sequence[float]) -> dict:
    """``{p50, p95, p99, mean, max, n}`` of ``values`` (milliseconds), rounded to 0.01; ``None`` when empty."""
    if not len(values):
        return {"p50": None, "p95": None, "p99": None, "mean": None, "max": None, "n": 0}
    arr = np.asarray(values, dtype=np.float64)
    p50, p95, p99 = np.percentile(arr, [50, 95, 99])
    return {"p50": round(float(p50), 2), "p95": round(float(p95), 2), "p99": round(float(p99), 2),
            "mean": round(float(arr.mean()), 2), "max": round(float(arr.max()), 2), "n": int(arr.size)}


def peak_rss_mb() -> float:
    """Peak resident memory of this process so far, in MiB (``getrusage``; Linux reports KiB)."""
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0, 1)


def load_average() -> list[float]:
    """The 1, 5 and 15 minute load averages (empty where the OS has none)."""
    try:
        return [round(v, 2) for v in os.getloadavg()]
    except OSError:
        return []


def cpu_model() -> str:
    """The CPU's model name from /proc/cpuinfo, else ``platform.processor()``."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as fh:
            for line in fh:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def machine_info() -> dict:
    """Where the numbers were taken: CPU, cores, torch, bf16 support (AMX decides ``precision: auto``), load now."""
    import torch  # noqa: PLC0415

    from perception.runtime.device import cpu_has_amx, cpu_has_native_bf16, resolve_precision  # noqa: PLC0415

    return {"cpu": cpu_model(), "cores": os.cpu_count(), "torch": torch.__version__,
            "torch_threads": torch.get_num_threads(), "native_bf16": cpu_has_native_bf16(), "amx": cpu_has_amx(),
            "auto_precision": resolve_precision("auto", torch.device("cpu")),
            "cuda": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
            "load_average": load_average(), "python": platform.python_version()}


def fixed_work_probe(seconds: float = 10.0, work_ms: float = 25.0) -> dict:
    """How steady this machine is right now: the same single-threaded work (about ``work_ms`` of matrix products, one
    torch thread) repeated for ``seconds``, its times summarised (``summary_ms``) with ``p99_over_p50``. On a quiet
    dedicated core the ratio is near 1; on the shared 2-core development VM, idle but for the probe, it measured 2.8
    (p50 25 ms, p99 70 ms, max 110 ms): a latency tail that no pipeline running there can be below."""
    import torch  # noqa: PLC0415

    from perception.runtime.device import torch_threads  # noqa: PLC0415

    a, b = torch.randn(512, 512), torch.randn(512, 512)
    with torch_threads(1), torch.inference_mode():
        started = time.perf_counter()
        a @ b
        once = max(time.perf_counter() - started, 1e-5)
        for _ in range(3):  # warm, then size the work from the fastest of a few products
            started = time.perf_counter()
            a @ b
            once = min(once, max(time.perf_counter() - started, 1e-5))
        repeats = max(1, int(round(work_ms / 1000.0 / once)))
        times: list[float] = []
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            started = time.perf_counter()
            for _ in range(repeats):
                a @ b
            times.append((time.perf_counter() - started) * 1000.0)
    summary = summary_ms(times)
    summary["p99_over_p50"] = round(summary["p99"] / summary["p50"], 2) if summary["p50"] else None
    summary["seconds"] = seconds
    return summary


@dataclass
class Stopwatch:
    """Wall and process CPU time of a block: ``with Stopwatch() as sw: ...; sw.wall_s, sw.cpu_s``."""

    wall_s: float = 0.0
    cpu_s: float = 0.0
    load_before: list[float] = field(default_factory=list)
    load_after: list[float] = field(default_factory=list)
    _t0: float = 0.0
    _c0: float = 0.0

    def __enter__(self) -> "Stopwatch":
        self.load_before = load_average()
        self._t0, self._c0 = time.perf_counter(), time.process_time()
        return self

    def __exit__(self, *exc: object) -> None:
        self.wall_s = time.perf_counter() - self._t0
        self.cpu_s = time.process_time() - self._c0
        self.load_after = load_average()


def read_rgb_frames(video: str, max_frames: int = 0) -> Iterator[np.ndarray]:
    """``(H, W, 3)`` uint8 RGB frames of ``video`` (OpenCV), at most ``max_frames`` (0: all)."""
    from perception.io.opencv_video import read_video  # noqa: PLC0415

    return read_video(video, max_frames)
