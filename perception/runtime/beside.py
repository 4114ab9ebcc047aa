"""``Beside``: run a piece of a frame's model work on a helper thread while the calling thread does another piece.

Autocast and inference mode are thread-local in torch, so the helper enters the caller's: the same CPU autocast
dtype (or none) and inference mode, captured at submission. One helper thread, so submitted work runs in order. Used
by ``Perceiver`` twice: for the global stream's per-frame share (``DualStreamEncoder.encode(beside=)``: the staged ViT
blocks run on the second core while the local stream runs on the first) and for the detector's image-only half
(``prepare``), each on a thread of its own.
"""

from __future__ import annotations

from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, Callable

import torch


class Beside:
    """``beside(fn, *args) -> Future`` of ``fn(*args)``, run on the helper thread under the caller's CPU autocast and
    inference mode."""

    def __init__(self, name: str = "beside") -> None:
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix=name)

    def __call__(self, fn: Callable[..., Any], *args: Any) -> Future:
        inference = torch.is_inference_mode_enabled()
        autocast_on = torch.is_autocast_enabled("cpu")
        dtype = torch.get_autocast_dtype("cpu")

        def run() -> Any:
            with torch.inference_mode(inference), torch.autocast("cpu", dtype=dtype, enabled=autocast_on):
                return fn(*args)

        return self._pool.submit(run)

    def close(self) -> None:
        self._pool.shutdown(wait=True)
