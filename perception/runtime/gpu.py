"""The CUDA side of the runtime: pinned, non-blocking frame uploads and the compiled encoder (``runtime.compile``).

``PinnedUpload``: a frame goes to the GPU through a page-locked staging buffer with a non-blocking copy, so the
host thread does not wait for the transfer. Two buffers per frame shape are used in turn, and each is reused only
after the copy that last read it has finished (a CUDA event), so the next frame never overwrites bytes in flight.

``compile_encoder(encoder, mode)``: ``torch.compile`` on the parts of the encoder that run on every frame with the
same shapes, the local stream and the fusion (the staged global stream changes its work from frame to frame and
stays eager). ``inductor``: fused Triton kernels. ``cuda_graphs``: the same, replayed as CUDA graphs
(``reduce-overhead``): a graph's outputs live in memory the next replay overwrites, so ``CompiledEncoder.encode``
marks each frame as a new step and clones what it returns. Measured on an H200 (``bench/gpu_encoder.py``, 1280x720,
fp16, default schedule): eager 2.7-4.0 ms a frame (p50), ``inductor`` 2.1-2.6 ms, ``cuda_graphs`` 1.35 ms; p99
4.5-5.8, 3.9-4.7 and 3.5 ms. On the CPU neither pays (the local stream took 9.6-10.2 ms compiled against 6.5 ms
eager with the fused oneDNN convolutions), so ``runtime.compile`` is refused there.

Online adaptation copies the serving model and swaps parameters into it: ``uncompile_encoder`` puts the eager
modules back before an adapter is attached.
"""

from __future__ import annotations

import logging
from typing import Any

import numpy as np
import torch

from perception.models.types import EncoderOutput

log = logging.getLogger(__name__)

COMPILE_MODES = {"none": None, "inductor": "default", "cuda_graphs": "reduce-overhead"}
COMPILED_PARTS = ("local_stream", "fusion")


class PinnedUpload:
    """``upload(image)``: an ``(H, W, 3)`` uint8 array -> ``(1, H, W, 3)`` uint8 tensor on ``device`` (see above)."""

    def __init__(self, device: torch.device) -> None:
        self.device = device
        self._buffers: dict[tuple, list[tuple[torch.Tensor, torch.cuda.Event | None]]] = {}
        self._turn = 0

    def __call__(self, image: np.ndarray) -> torch.Tensor:
        key = tuple(image.shape)
        slots = self._buffers.setdefault(key, [])
        if len(slots) < 2:
            slots.append((torch.empty((1, *key), dtype=torch.uint8).pin_memory(), None))
        self._turn = (self._turn + 1) % len(slots)
        staging, done = slots[self._turn]
        if done is not None:
            done.synchronize()  # the copy that last read this buffer has finished
        staging[0].copy_(torch.from_numpy(image))
        out = staging.to(self.device, non_blocking=True)
        event = torch.cuda.Event()
        event.record()
        slots[self._turn] = (staging, event)
        return out


def compile_encoder(encoder: Any, mode: str) -> bool:
    """Compile ``encoder``'s per-frame parts in ``mode`` (a key of ``COMPILE_MODES``); False when there is nothing
    to compile (``none``, or an encoder without them)."""
    torch_mode = COMPILE_MODES[mode]
    if torch_mode is None or not all(isinstance(getattr(encoder, n, None), torch.nn.Module) for n in COMPILED_PARTS):
        return False
    for name in COMPILED_PARTS:
        setattr(encoder, name, torch.compile(getattr(encoder, name), mode=torch_mode, dynamic=False))
    return True


def uncompile_encoder(encoder: Any) -> None:
    """Put the eager modules back (``torch.compile`` keeps them as ``_orig_mod``)."""
    for name in COMPILED_PARTS:
        module = getattr(encoder, name, None)
        original = getattr(module, "_orig_mod", None)
        if original is not None:
            setattr(encoder, name, original)


def new_graph_step() -> None:
    """Before a frame through CUDA graphs: the previous frame's graph outputs are no longer read in place."""
    torch.compiler.cudagraph_mark_step_begin()


def owned(output: EncoderOutput) -> EncoderOutput:
    """``output`` with the tensors a CUDA graph wrote cloned, so the next replay cannot change them under a reader
    (the pipelined node detects on frame t while t+1 is encoded)."""
    return EncoderOutput(dense=output.dense.clone(), global_embedding=output.global_embedding.clone(),
                         local=None if output.local is None else output.local.clone(),
                         global_tokens=output.global_tokens, keyframe=output.keyframe)
