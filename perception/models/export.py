"""ONNX export of the ``DualStreamEncoder`` as two fixed-size graphs, verified with onnxruntime against PyTorch.

The streaming encoder does two kinds of step, so it is exported as two graphs (ONNX has no optional state):

- ``<name>.onnx`` (the keyframe graph, ``KeyframeGraph``): ``frames (B, 3, H, W)`` float in [0, 1] ->
  ``dense (B, C, H/8, W/8)``, ``embedding (B, D)`` and the new state ``memory (B, M, Dg)``,
  ``global_tokens (B, N, Dg)``, ``global_cls (B, Dg)``: normalisation, local stream, global stream at
  ``global_scale``, memory update, fusion. This is ``encode(frames, None, start_scale=0.0)``.
- ``<name>_step.onnx`` (``StepGraph``): ``frames`` plus the state -> ``dense``, ``embedding``: the frames between
  keyframes (local stream and fusion with the last global tokens), ``encode(frames, state)`` on a non-keyframe.

A runtime runs the keyframe graph every ``global_every`` frames and the step graph in between, as
``DualStreamEncoder.encode`` does. Sizes are fixed at export (the token grid of the global stream depends on them);
export once per camera resolution. ``<name>.json`` records sizes, names and the schedule. Export uses the
``torch.export``-based exporter (``dynamo=True``: the legacy TorchScript tracer cannot round traced sizes);
``verify_onnx`` runs both graphs with onnxruntime on the CPU and returns the largest absolute difference from
PyTorch in fp32 per output (the issue's bar: under 1e-3).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

KEYFRAME_OUTPUTS = ("dense", "embedding", "memory", "global_tokens", "global_cls")
STEP_INPUTS = ("frames", "memory", "global_tokens", "global_cls")
STEP_OUTPUTS = ("dense", "embedding")


class KeyframeGraph(nn.Module):
    """``frames -> dense, embedding, memory, global_tokens, global_cls`` (``encode(frames, None, start_scale=0.0)``)."""

    def __init__(self, encoder: nn.Module) -> None:
        super().__init__()
        self.encoder = encoder

    def forward(self, frames: torch.Tensor) -> tuple[torch.Tensor, ...]:
        out, state = self.encoder.encode(frames, None, start_scale=0.0)
        return out.dense, out.global_embedding, state.memory, state.global_tokens, state.global_cls


class StepGraph(nn.Module):
    """``frames, memory, global_tokens, global_cls -> dense, embedding``: a frame between keyframes on the token
    ``grid`` of the keyframe graph at the same size (the non-keyframe branch of ``DualStreamEncoder.encode``)."""

    def __init__(self, encoder: nn.Module, grid: tuple[int, int]) -> None:
        super().__init__()
        self.encoder = encoder
        self.grid = (int(grid[0]), int(grid[1]))

    def forward(self, frames: torch.Tensor, memory: torch.Tensor, global_tokens: torch.Tensor,
                global_cls: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        enc = self.encoder
        local = enc._local(enc.normalise(frames))
        return enc.fusion(local, global_tokens, self.grid, memory, global_cls)


def _reference(encoder: nn.Module, frames: torch.Tensor) -> tuple[dict[str, np.ndarray], Any]:
    with torch.inference_mode():
        out, state = encoder.encode(frames, None, start_scale=0.0)
        second, _ = encoder.encode(frames, state) if encoder.global_every > 1 else (out, state)
    keyframe = {"dense": out.dense, "embedding": out.global_embedding, "memory": state.memory,
                "global_tokens": state.global_tokens, "global_cls": state.global_cls}
    ref = {f"keyframe.{k}": v.float().numpy().copy() for k, v in keyframe.items()}
    ref["step.dense"] = second.dense.float().numpy().copy()
    ref["step.embedding"] = second.global_embedding.float().numpy().copy()
    return ref, state


def export_onnx(encoder: nn.Module, path: str | Path, width: int = 640, height: int = 480, batch: int = 1,
                opset: int = 18, meta: dict | None = None) -> dict:
    """Write the keyframe graph to ``path``, the step graph beside it (``<stem>_step.onnx``) and ``<stem>.json``;
    returns the JSON's content. ``width`` and ``height`` must be multiples of the encoder's stride (8)."""
    stride = int(getattr(encoder, "stride", 8))
    if width % stride or height % stride or width <= 0 or height <= 0:
        raise ValueError(f"export: size {width}x{height}: expected positive multiples of the stride {stride}")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    encoder = encoder.float().eval()
    frames = torch.rand(batch, 3, height, width, generator=torch.Generator().manual_seed(0))
    with torch.inference_mode():
        _, state = encoder.encode(frames, None, start_scale=0.0)
    grid = tuple(int(v) for v in state.global_grid)
    state_args = (state.memory.clone(), state.global_tokens.clone(), state.global_cls.clone())
    step_path = path.with_name(f"{path.stem}_step.onnx")
    with torch.no_grad():
        torch.onnx.export(KeyframeGraph(encoder).eval(), (frames,), str(path), dynamo=True, opset_version=opset,
                          input_names=["frames"], output_names=list(KEYFRAME_OUTPUTS), external_data=False)
        torch.onnx.export(StepGraph(encoder, grid).eval(), (frames, *state_args), str(step_path), dynamo=True,
                          opset_version=opset, input_names=list(STEP_INPUTS), output_names=list(STEP_OUTPUTS),
                          external_data=False)
    info = {"keyframe_graph": path.name, "step_graph": step_path.name, "input": {"batch": batch, "width": width,
            "height": height, "range": "[0, 1] RGB float32, NCHW"}, "global_grid": list(grid),
            "global_every": int(encoder.global_every), "global_scale": float(encoder.global_scale),
            "opset": opset, "keyframe_outputs": list(KEYFRAME_OUTPUTS), "step_inputs": list(STEP_INPUTS),
            "step_outputs": list(STEP_OUTPUTS), **(meta or {})}
    path.with_suffix(".json").write_text(json.dumps(info, indent=2))
    return info


def verify_onnx(encoder: nn.Module, path: str | Path, seed: int = 1) -> dict[str, float]:
    """Largest absolute difference between onnxruntime (CPU) and PyTorch (fp32) for every output of both graphs
    exported by :func:`export_onnx` at ``path``, on a random frame of the exported size."""
    import onnxruntime as ort  # noqa: PLC0415

    path = Path(path)
    info = json.loads(path.with_suffix(".json").read_text())
    shape = (info["input"]["batch"], 3, info["input"]["height"], info["input"]["width"])
    frames = torch.rand(shape, generator=torch.Generator().manual_seed(seed))
    encoder = encoder.float().eval()
    ref, _ = _reference(encoder, frames)
    options = ort.SessionOptions()
    options.log_severity_level = 3
    key = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    key_out = dict(zip(KEYFRAME_OUTPUTS, key.run(list(KEYFRAME_OUTPUTS), {"frames": frames.numpy()})))
    step = ort.InferenceSession(str(path.with_name(info["step_graph"])), options, providers=["CPUExecutionProvider"])
    feeds = {"frames": frames.numpy(), **{k: key_out[k] for k in STEP_INPUTS[1:]}}
    step_out = dict(zip(STEP_OUTPUTS, step.run(list(STEP_OUTPUTS), feeds)))
    diffs = {f"keyframe.{k}": float(np.abs(v - ref[f"keyframe.{k}"]).max()) for k, v in key_out.items()}
    if info["global_every"] > 1:
        diffs.update({f"step.{k}": float(np.abs(v - ref[f"step.{k}"]).max()) for k, v in step_out.items()})
    return diffs
