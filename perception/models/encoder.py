"""``DualStreamEncoder``: local conv stream on every frame, DINOv2-compatible global ViT on keyframes, fused by
cross-attention into a stride-8 dense map and a global embedding (see DESIGN.md, "The encoder").

Streaming: ``encode(frames, state) -> (EncoderOutput, EncoderState)``. The state is explicit and the module keeps
none itself, so one model serves several cameras and a replay is deterministic. Frame ``state.frame_index`` is a
keyframe when ``frame_index % global_every == 0`` or there are no global tokens yet; the global stream then runs
at ``global_scale`` times the frame resolution and updates the memory tokens; between keyframes the last global
tokens and memory are reused.

``global_stages = S > 1`` (at most ``global_every``; 0 means ``global_every``) spreads each keyframe's global-stream
run over S frames instead of one: the keyframe starts it (patch embedding and the first blocks), the next S - 1
frames run the following blocks (the depth split as evenly as it goes, larger shares first), and the frame that
runs the last block swaps the new tokens and memory in (frame S - 1 after the keyframe when the ViT has at least S
blocks). Every frame then costs about the same (the local stream, the fusion and 1/S of the ViT) where a keyframe
used to cost a whole ViT more, which is what a 30 Hz latest-only consumer needs; the price is that fused features
use global context S - 1 frames older. The very first frame of a stream has no tokens to fall back on, so its run
is never staged: it runs whole at ``global_scale``, or, with ``global_start_scale = s > 0`` under a staged schedule,
whole at the smaller scale ``s`` (coarse tokens at a fraction of the cost, so a stream's first output is not late),
and these carry the stream until the first staged run at ``global_scale``, started at the next keyframe, finishes.
``encode(..., start_scale=0)`` (``forward``, ONNX export) always runs the first frame at ``global_scale``.
``output.keyframe`` marks the frame whose fusion first uses new global tokens (the keyframe itself when S is 1). The
returned state holds tensors as computed (with their autograd graph when grads are on: use ``detach_state`` between
steps of truncated back-propagation through time).

Inputs are ``(B, 3, H, W)`` floats in [0, 1] (RGB), normalised here with the ImageNet mean/std that DINOv2 uses.
Any H, W: the local stream pads bottom/right to a multiple of 8 (replicate), so ``dense`` is
``(B, C, ceil(H/8), ceil(W/8))``; 640x480 gives ``(B, C, 60, 80)``.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Callable

import torch
import torch.nn.functional as F
from torch import nn

from perception.models.fusion import Fusion
from perception.models.global_stream import GlobalStream, GlobalTokens
from perception.models.local_stream import LocalStream
from perception.models.types import EncoderOutput, EncoderState, GlobalJob

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def detach_state(state: EncoderState) -> EncoderState:
    """A copy of ``state`` whose tensors are detached from the autograd graph."""
    def cut(t: torch.Tensor | None) -> torch.Tensor | None:
        return None if t is None else t.detach()

    pending = None if state.pending is None else dataclasses.replace(state.pending, tokens=cut(state.pending.tokens))
    return dataclasses.replace(
        state, memory=cut(state.memory), global_tokens=cut(state.global_tokens), global_cls=cut(state.global_cls),
        extra=dict(state.extra), pending=pending,
    )


class DualStreamEncoder(nn.Module):
    """Attributes: ``out_channels`` (C of ``dense``), ``embed_dim`` (D of ``global_embedding``), ``stride`` (8),
    ``global_every``, ``global_scale``; submodules ``local_stream``, ``global_stream`` (its ``vit`` has DINOv2's
    state-dict keys) and ``fusion``."""

    stride = 8

    def __init__(
        self,
        local_stream: LocalStream,
        global_stream: GlobalStream,
        fusion: Fusion,
        global_every: int = 4,
        global_scale: float = 0.5,
        global_stages: int = 1,
        global_start_scale: float = 0.0,
    ) -> None:
        super().__init__()
        self.local_stream = local_stream
        self.global_stream = global_stream
        self.fusion = fusion
        self.set_schedule(global_every, global_scale, global_stages, global_start_scale)
        self.out_channels = fusion.out_dim
        self.embed_dim = fusion.embed_dim
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1), persistent=False)

    def set_schedule(self, global_every: int, global_scale: float, global_stages: int | None = None,
                     global_start_scale: float | None = None) -> None:
        """Run the global stream every ``global_every`` frames at ``global_scale`` times the frame resolution, each
        run spread over ``global_stages`` frames (0: over all ``global_every``), a stream's first frame at
        ``global_start_scale`` when staged (0: at ``global_scale``, and never above it); None keeps the current
        setting."""
        if int(global_every) != global_every or global_every < 1:
            raise ValueError(f"global_every must be an integer >= 1, got {global_every!r}")
        if not 0.0 < global_scale <= 4.0:
            raise ValueError(f"global_scale must be in (0, 4], got {global_scale!r}")
        start = getattr(self, "global_start_scale", 0.0) if global_start_scale is None else global_start_scale
        if not 0.0 <= start <= 4.0:
            raise ValueError(f"global_start_scale must be in [0, 4] (0: global_scale), got {start!r}")
        stages = getattr(self, "global_stages", 1) if global_stages is None else global_stages
        if int(stages) != stages or not 0 <= stages <= global_every:
            raise ValueError(f"global_stages must be an integer in [0, global_every={global_every}] (0: as many as "
                             f"global_every), got {stages!r}")
        stages = stages or global_every
        self.global_every = int(global_every)
        self.global_scale = float(global_scale)
        self.global_stages = int(stages)
        self.global_start_scale = float(start)

    def stage_blocks(self, stage: int) -> int:
        """ViT blocks run at ``stage`` (0-based) of a staged run: the depth split as evenly as the stages allow."""
        depth, stages = self.global_stream.depth, self.global_stages
        return depth // stages + (1 if stage < depth % stages else 0)

    def init_state(self, batch: int = 1) -> EncoderState:
        """State of ``batch`` cameras before their first frame (no history: the first frame is a keyframe)."""
        return EncoderState(extra={"batch": int(batch)})

    def is_keyframe(self, state: EncoderState) -> bool:
        return state.global_tokens is None or state.frame_index % self.global_every == 0

    def _check(self, frames: torch.Tensor, state: EncoderState) -> None:
        if frames.ndim != 4 or frames.shape[1] != 3:
            raise ValueError(f"encode: frames must be (B, 3, H, W), got {tuple(frames.shape)}")
        if not frames.is_floating_point():
            raise ValueError(f"encode: frames must be float in [0, 1], got dtype {frames.dtype}")
        expected = state.extra.get("batch")
        if expected is not None and expected != frames.shape[0]:
            raise ValueError(f"encode: state was made for batch {expected} but frames have batch {frames.shape[0]}")
        for name in ("memory", "global_tokens", "global_cls"):
            t = getattr(state, name)
            if t is not None and t.shape[0] != frames.shape[0]:
                raise ValueError(
                    f"encode: state.{name} has batch {t.shape[0]} but frames have batch {frames.shape[0]}"
                )

    def normalise(self, frames: torch.Tensor) -> torch.Tensor:
        """``(frames - mean) / std`` as one fused multiply-add, ``frames * (1 / std) + (-mean / std)``: a single pass
        that keeps the input's memory format (the subtract-then-divide form took 3.6 ms on a channels_last 640x480
        frame on the 2-core CPU, this one 1.4 ms; the results agree to float rounding)."""
        scale = self.std.reciprocal().to(frames.dtype)
        return torch.addcmul((-self.mean * scale).to(frames.dtype), frames, scale)

    def _local(self, x: torch.Tensor) -> torch.Tensor:
        pad_h = -x.shape[-2] % self.stride
        pad_w = -x.shape[-1] % self.stride
        if pad_h or pad_w:
            x = F.pad(x, (0, pad_w, 0, pad_h), mode="replicate")
        return self.local_stream(x.contiguous(memory_format=torch.channels_last))

    def encode(self, frames: torch.Tensor, state: EncoderState | None = None, normalised: bool = False,
               beside: Callable[..., Any] | None = None,
               start_scale: float | None = None) -> tuple[EncoderOutput, EncoderState]:
        """Encode one frame per camera; returns the output and the next state (the input state is not changed).
        ``frames`` in [0, 1], or already ``(frames - mean) / std`` when ``normalised``. ``beside(fn, *args)``, when
        given (inference only), runs the frame's global-stream share on another thread and returns a future: it runs
        while this thread computes the local stream (it reads only ``x`` and the state), and fusion waits for it.
        ``start_scale``: the scale of a stream's first global run under a staged schedule (None: the schedule's
        ``global_start_scale``; 0: ``global_scale``)."""
        if state is None:
            state = self.init_state(frames.shape[0])
        self._check(frames, state)
        x = frames if normalised else self.normalise(frames)
        keyframe = self.is_keyframe(state)
        start = self.global_start_scale if start_scale is None else float(start_scale)
        if beside is not None and not torch.is_grad_enabled():
            job = beside(self._global_share, x, state, keyframe, start)
            local = self._local(x)
            run, pending, keyframe = job.result()
        else:
            local = self._local(x)
            run, pending, keyframe = self._global_share(x, state, keyframe, start)
        dense, embedding = self.fusion(local, run.patches, run.grid, run.memory, run.cls)
        batch = frames.shape[0]
        output = EncoderOutput(
            dense=dense,
            global_embedding=embedding,
            local=local,
            global_tokens=run.patches,
            keyframe=torch.full((batch,), keyframe, dtype=torch.bool, device=frames.device),
        )
        new_state = EncoderState(
            memory=run.memory,
            global_tokens=run.patches,
            global_grid=run.grid,
            global_cls=run.cls,
            frame_index=state.frame_index + 1,
            extra=dict(state.extra),
            pending=pending,
        )
        return output, new_state

    def _global_share(self, x: torch.Tensor, state: EncoderState, keyframe: bool,
                      start_scale: float = 0.0) -> tuple[GlobalTokens, GlobalJob | None, bool]:
        """This frame's global-stream work: a whole run (unstaged schedule, or a stream's first frame, at
        ``start_scale`` when that is set and the schedule staged) or its share of a staged one; ``(tokens for this
        frame's fusion, job still running, whether the tokens are new)``."""
        if keyframe and (self.global_stages == 1 or state.global_tokens is None):
            first = state.global_tokens is None and self.global_stages > 1 and start_scale > 0.0
            scale = min(start_scale, self.global_scale) if first else self.global_scale
            return self.global_stream(x, state.memory, scale), None, keyframe
        return self._staged(x, state, keyframe)

    def _staged(self, x: torch.Tensor, state: EncoderState,
                keyframe: bool) -> tuple[GlobalTokens, GlobalJob | None, bool]:
        """One frame's share of a staged global run: ``(tokens for this frame's fusion, job still running, whether
        the tokens are new)``. A keyframe starts a job (a job left unfinished by a skipped schedule is dropped)."""
        old = GlobalTokens(state.global_cls, state.global_tokens, state.global_grid, state.memory)
        job = self.global_stream.start(x, self.global_scale) if keyframe else state.pending
        if job is None:
            return old, None, False
        stage = state.frame_index % self.global_every
        job = self.global_stream.advance(job, self.stage_blocks(stage))
        if job.done < self.global_stream.depth:
            return old, job, False
        return self.global_stream.finish(job, state.memory), None, True

    def forward(self, frames: torch.Tensor) -> EncoderOutput:
        """Single-frame encode from a fresh state (the global stream runs): the training entry point."""
        output, _ = self.encode(frames, None, start_scale=0.0)
        return output
