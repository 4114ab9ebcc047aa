"""Device, precision and thread settings of the runtime.

``resolve_device("auto")`` is CUDA when available, else CPU. ``resolve_precision("auto", device)``: fp16 autocast
on CUDA; on the CPU, bf16 autocast only where the CPU has AMX tiles (``cpu_has_amx``), fp32 elsewhere. bf16 pays
only through AMX: on the 2-core development VM with AMX it was about 2x over fp32 on a ViT-S (PERF_NOTES), and on
the same VM kind with AMX hidden (AVX-512 BF16 alone, torch 2.13.0, one thread) it was slower everywhere: a
1024x1024 matrix product 13.5 ms against 7.6 in fp32, the dualstream_s local stream at 640x480 13.5 against
8.3 ms, its fusion 6.4 against 3.6 ms, ViT-S/14 at 224x224 (two threads) 110 against 74 ms, and the whole
in-process pipeline on vtest.avi 30.0 against 41.6 fps. Set ``runtime.precision`` to choose otherwise.
``autocast(device, precision)`` is the matching ``torch.autocast`` context (a no-op for fp32).
``auto_threads(device, pipelined)`` is what ``runtime.threads: 0`` means (see there).
"""

from __future__ import annotations

import contextlib
import os
import sys
from typing import ContextManager, Iterator

import torch

LIBRARY_THREADS = torch.get_num_threads()  # torch's own default (the cores), before anything here changes it

PRECISIONS = ("auto", "fp32", "bf16", "fp16")
_DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16, "fp32": torch.float32}


class DeviceError(ValueError):
    """A device or precision setting cannot be honoured; the message names the setting and why."""


def resolve_device(name: str = "auto") -> torch.device:
    """``auto`` | ``cpu`` | ``cuda`` | ``cuda:N`` -> a ``torch.device`` that exists on this machine."""
    name = (name or "auto").strip().lower()
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError as exc:
        raise DeviceError(f"runtime.device '{name}': expected auto, cpu, cuda or cuda:N") from exc
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise DeviceError(f"runtime.device '{name}': CUDA is not available on this machine (use cpu or auto)")
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise DeviceError(f"runtime.device '{name}': only {torch.cuda.device_count()} CUDA device(s) present")
    elif device.type != "cpu":
        raise DeviceError(f"runtime.device '{name}': expected auto, cpu, cuda or cuda:N")
    return device


def _cpu_probe(name: str) -> bool:
    """``torch.cpu.<name>()`` as a bool; False when this torch has no such probe or it fails."""
    probe = getattr(torch.cpu, name, None)
    if probe is None:
        return False
    try:
        return bool(probe())
    except RuntimeError:
        return False


def cpu_has_native_bf16() -> bool:
    """True when the CPU computes bf16 natively (AVX-512 BF16 or AMX tiles); see ``cpu_has_amx`` for when it pays."""
    return cpu_has_amx() or _cpu_probe("_is_avx512_bf16_supported")


def cpu_has_amx() -> bool:
    """True when the CPU has AMX tiles that this process may use (the kernel and hypervisor expose them): the one
    case where bf16 autocast is faster than fp32 on the CPU (module docstring)."""
    return _cpu_probe("_is_amx_tile_supported")


def resolve_precision(name: str, device: torch.device) -> str:
    """``auto`` | ``fp32`` | ``bf16`` | ``fp16`` -> the precision used on ``device`` (never ``auto``)."""
    name = (name or "auto").strip().lower()
    if name not in PRECISIONS:
        raise DeviceError(f"runtime.precision '{name}': expected one of {', '.join(PRECISIONS)}")
    if name == "auto":
        if device.type == "cuda":
            return "fp16"
        return "bf16" if cpu_has_amx() else "fp32"
    if name == "fp16" and device.type == "cpu":
        raise DeviceError("runtime.precision 'fp16' is not supported on CPU (use bf16 or fp32)")
    return name


def autocast(device: torch.device, precision: str) -> ContextManager:
    """The autocast context for ``precision`` on ``device``; ``nullcontext`` for fp32."""
    if precision == "fp32":
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=_DTYPES[precision])


@contextlib.contextmanager
def torch_threads(threads: int) -> Iterator[None]:
    """Run a block with ``threads`` torch intra-op threads, then restore the previous number. Many tiny ops (few-shot
    fits, small tests) run ~10x faster on one thread than on two when another process holds a core: OpenMP workers
    spin and wait for each other."""
    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def auto_threads(device: torch.device, pipelined: bool) -> int:
    """Intra-op threads for ``runtime.threads: 0``: on the CPU with ``runtime.pipelined``, one fewer than the cores,
    so that the second stage (detection, publishing) and the decoder or ROS executor keep a core of their own; 0
    (torch's default) otherwise. Measured on the 2-core CPU (vtest.avi, ``dualstream bench``, same machine state):
    the ROS graph delivered 28.1 fps with 7.7 % drops with 1 thread against 23.2 fps and 24 % with 2, since two
    OpenMP threads wait for each other whenever the other processes of the graph hold a core."""
    if device.type != "cpu" or not pipelined:
        return 0
    return max(1, (os.cpu_count() or LIBRARY_THREADS) - 1)


def set_switch_interval(ms: float) -> float:
    """``sys.setswitchinterval(ms / 1000)`` when ``ms > 0`` (process-wide); returns the interval in use, in ms.

    A thread that waits for the interpreter lock asks its holder to drop it only after the switch interval (5 ms by
    default). The encoder's thread gives the lock up around every torch op (about a hundred a frame) and must win it
    back each time from the threads that run Python: the second stage (detection, publishing) and the ROS executor.
    Measured on the 2-core CPU: an encode of 21-26 ms alone took 41 ms next to a thread running Python half the time
    with the default interval and 30 ms with 0.2 ms (873 and 53 ms next to one running Python all the time); the
    in-process pipelined pipeline (vtest.avi, three alternating pairs) ran 34.3 / 36.7 / 35.7 fps with 0.2 ms against
    33.7 / 29.3 / 34.9 with 5 ms. In the ROS graph the difference stayed inside the run-to-run spread (four pairs)."""
    if ms < 0:
        raise DeviceError(f"runtime.switch_interval_ms {ms}: expected >= 0 (0 keeps Python's default)")
    if ms > 0:
        sys.setswitchinterval(ms / 1000.0)
    return sys.getswitchinterval() * 1000.0


def set_threads(threads: int) -> int:
    """Set torch's intra-op threads when ``threads > 0``; return the number in use."""
    if threads < 0:
        raise DeviceError(f"runtime.threads {threads}: expected >= 0 (0 keeps the library default)")
    if threads > 0:
        torch.set_num_threads(threads)
    return torch.get_num_threads()
