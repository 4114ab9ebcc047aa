"""The shipped default checkpoint (models/dualstream_s): size, provenance, declared readout, and that the runtime's
default path loads it into a working encoder."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from perception.config import EncoderConfig
from perception.models.checkpoint import load_checkpoint
from perception.runtime.model_loading import default_checkpoint

MODELS = Path(__file__).resolve().parents[3] / "models"


def test_shipped_checkpoint_is_small_documented_and_trained_without_davis():
    weights = MODELS / "dualstream_s.safetensors"
    meta = json.loads((MODELS / "dualstream_s.json").read_text())
    assert weights.stat().st_size <= 50_000_000  # the issue: at most 50 MB
    assert meta["name"] == "dualstream_s" and meta["correspondence_readout"] in ("dense", "local")
    provenance = meta["provenance"]
    assert provenance["steps"] > 0 and provenance["seconds"] > 0 and provenance["hardware"]
    files = [Path(d["path"]).name if isinstance(d, dict) else Path(d).name for d in provenance["data"]]
    assert files and not any("davis" in f.lower() or f.endswith(".jpg") for f in files)
    assert "loss" in meta["config"] and meta["config"]["loss"]["crw"] > 0  # trained by `dualstream pretrain`


def test_runtime_default_loads_it_and_it_encodes(one_torch_thread):
    path = default_checkpoint("dualstream_s")
    if path is None:
        pytest.skip("no shipped checkpoint")
    model, meta = load_checkpoint(path)
    with torch.no_grad():
        out = model(torch.rand(1, 3, 96, 128))
    assert out.dense.shape == (1, 128, 12, 16) and out.local.shape[-2:] == (12, 16)
    assert torch.isfinite(out.dense).all() and out.dense.std() > 0
    assert EncoderConfig().name == "dualstream_s"
