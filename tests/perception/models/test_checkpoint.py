"""Checkpoints: safetensors + JSON, atomic, rebuilt by registry name; clear errors when damaged."""

from __future__ import annotations

import json

import pytest
import torch
from safetensors.torch import save_file

from perception.models import create_encoder
from perception.models.checkpoint import CheckpointError, file_sha256, load_checkpoint, save_checkpoint


@pytest.fixture()
def saved(tmp_path):
    torch.manual_seed(0)
    model = create_encoder("dualstream_tiny", global_every=2, out_channels=24).eval()
    with torch.no_grad():
        model.local_stream.layers[0].norm.running_mean.uniform_(-1, 1)  # buffers travel too
    path = save_checkpoint(model, tmp_path / "enc", {"encoder": {"name": "dualstream_tiny"}}, {"git": "abc"})
    return model, path


def test_save_load_roundtrip(saved, tmp_path):
    model, path = saved
    assert path == tmp_path / "enc.safetensors"
    meta = json.loads((tmp_path / "enc.json").read_text())
    assert meta["name"] == "dualstream_tiny" and meta["encoder_kwargs"] == {"global_every": 2, "out_channels": 24}
    assert meta["provenance"] == {"git": "abc"} and meta["config"]["encoder"]["name"] == "dualstream_tiny"
    assert meta["sha256"] == file_sha256(path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["enc.json", "enc.safetensors"]  # no temp files left
    loaded, meta2 = load_checkpoint(tmp_path / "enc")
    assert meta2 == meta and loaded.global_every == 2 and loaded.out_channels == 24
    own, other = model.state_dict(), loaded.state_dict()
    assert own.keys() == other.keys() and all(torch.equal(own[k], other[k]) for k in own)
    x = torch.rand(1, 3, 40, 48)
    with torch.no_grad():
        assert torch.equal(model(x).dense, loaded(x).dense)
    # The suffix may be given too.
    load_checkpoint(path)


def test_missing_files_are_named(saved, tmp_path):
    with pytest.raises(CheckpointError, match="weights not found: .*nothere.safetensors"):
        load_checkpoint(tmp_path / "nothere")
    (tmp_path / "enc.json").unlink()
    with pytest.raises(CheckpointError, match="metadata not found: .*enc.json"):
        load_checkpoint(tmp_path / "enc")


def test_truncated_weights_are_detected(saved):
    _, path = saved
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match="truncated or modified"):
        load_checkpoint(path)


def test_truncated_weights_without_hash_are_unreadable(saved, tmp_path):
    _, path = saved
    path.write_bytes(path.read_bytes()[:100])
    meta = json.loads((tmp_path / "enc.json").read_text())
    meta["sha256"] = file_sha256(path)
    (tmp_path / "enc.json").write_text(json.dumps(meta))
    with pytest.raises(CheckpointError, match="not readable safetensors"):
        load_checkpoint(path)


def test_wrong_shape_names_key_and_both_shapes(saved, tmp_path):
    model, path = saved
    tensors = {k: v.contiguous() for k, v in model.state_dict().items()}
    tensors["fusion.local_proj.weight"] = torch.zeros(5, 32)
    save_file(tensors, str(path))
    meta = json.loads((tmp_path / "enc.json").read_text())
    meta["sha256"] = file_sha256(path)
    (tmp_path / "enc.json").write_text(json.dumps(meta))
    with pytest.raises(CheckpointError, match=r"fusion.local_proj.weight: .* \(5, 32\) vs model \(24, 32\)"):
        load_checkpoint(path)


def test_unknown_encoder_name_in_metadata(saved, tmp_path):
    meta = json.loads((tmp_path / "enc.json").read_text())
    meta["name"] = "no_such_encoder"
    (tmp_path / "enc.json").write_text(json.dumps(meta))
    with pytest.raises(CheckpointError, match="unknown encoder 'no_such_encoder'; known encoders: dualstream_b"):
        load_checkpoint(tmp_path / "enc")


def test_model_without_registry_name_is_refused(tmp_path):
    model = create_encoder("dualstream_tiny")
    del model.encoder_name
    with pytest.raises(CheckpointError, match="create_encoder"):
        save_checkpoint(model, tmp_path / "x", {}, {})


def test_encoder_from_config(saved, tmp_path):
    from perception.config import EncoderConfig
    from perception.models.checkpoint import encoder_from_config

    cfg = EncoderConfig(name="dualstream_tiny", checkpoint="", global_every=6, global_scale=0.25)
    fresh, meta = encoder_from_config(cfg)
    assert meta is None and (fresh.global_every, fresh.global_scale, fresh.encoder_name) == (6, 0.25, "dualstream_tiny")
    cfg.checkpoint = str(tmp_path / "enc.safetensors")
    loaded, meta = encoder_from_config(cfg)
    assert meta["name"] == "dualstream_tiny" and loaded.out_channels == 24 and loaded.global_every == 6
    cfg.global_every = 0
    with pytest.raises(ValueError, match="global_every must be an integer >= 1, got 0"):
        encoder_from_config(cfg)
