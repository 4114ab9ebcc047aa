"""ONNX export of the encoder (keyframe and step graphs) against PyTorch, run with onnxruntime on the CPU."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

pytest.importorskip("onnxruntime")
pytest.importorskip("onnxscript")

from perception.models.export import export_onnx, verify_onnx  # noqa: E402
from perception.models.registry import create_encoder  # noqa: E402
import perception.models.variants  # noqa: E402,F401  (registers the encoders)


def test_onnx_graphs_match_pytorch(tmp_path: Path, one_torch_thread):
    torch.manual_seed(0)
    encoder = create_encoder("dualstream_tiny").eval()
    path = tmp_path / "tiny.onnx"
    info = export_onnx(encoder, path, width=96, height=64)
    assert path.is_file() and (tmp_path / "tiny_step.onnx").is_file()
    meta = json.loads((tmp_path / "tiny.json").read_text())
    assert meta == info and meta["input"]["width"] == 96 and meta["global_every"] == 4
    assert tuple(meta["global_grid"]) == (2, 3)  # 32x48 at global_scale 0.5 -> 28x42 -> 2x3 patches of 14
    diffs = verify_onnx(encoder, path)
    assert set(diffs) == {"keyframe.dense", "keyframe.embedding", "keyframe.memory", "keyframe.global_tokens",
                          "keyframe.global_cls", "step.dense", "step.embedding"}
    assert max(diffs.values()) < 1e-3


def test_export_refuses_sizes_off_the_stride(tmp_path: Path):
    encoder = create_encoder("dualstream_tiny").eval()
    with pytest.raises(ValueError, match="multiples of the stride 8"):
        export_onnx(encoder, tmp_path / "x.onnx", width=100, height=64)
