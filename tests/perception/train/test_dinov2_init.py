"""``model.global_init``: official DINOv2 names and shapes (ViT-S/14 at 518 px, a 37x37 position grid, optional
registers and training prefixes) load from .pth (weights_only) and .safetensors into the global stream."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

from perception.models import create_encoder
from perception.models.vit import vit_small
from perception.train.config import load_train_config
from perception.train.dinov2_init import GlobalInitError, load_global_init
from perception.train.trainer import build_model


def official_vits14(registers: int = 0, seed: int = 1) -> dict[str, torch.Tensor]:
    """A state dict with the hub checkpoint's keys and shapes (``dinov2_vits14[_reg4]_pretrain.pth``)."""
    torch.manual_seed(seed)
    sd = vit_small(num_register_tokens=registers).state_dict()
    assert sd["pos_embed"].shape == (1, 1 + 37 * 37, 384)
    return {k: v.clone() for k, v in sd.items()}


@pytest.fixture(scope="module")
def model() -> torch.nn.Module:
    torch.manual_seed(0)
    return create_encoder("dualstream_s")


@pytest.mark.parametrize("suffix", [".pth", ".safetensors"])
def test_official_file_loads(model: torch.nn.Module, tmp_path: Path, suffix: str) -> None:
    sd = official_vits14()
    sd["pos_embed"] = torch.randn(1, 1 + 16 * 16, 384)  # a 224-px grid: resampled to the model's 37x37
    path = tmp_path / f"dinov2_vits14{suffix}"
    if suffix == ".pth":
        torch.save({"teacher": {f"teacher.backbone.{k}": v for k, v in sd.items()}}, path)  # training layout
    else:
        save_file(sd, str(path))
    notes = load_global_init(model, path)
    vit = model.global_stream.vit
    assert torch.equal(vit.blocks[11].mlp.fc2.weight, sd["blocks.11.mlp.fc2.weight"])
    assert torch.equal(vit.patch_embed.proj.weight, sd["patch_embed.proj.weight"])
    assert vit.pos_embed.shape == (1, 1 + 37 * 37, 384)
    assert torch.equal(vit.pos_embed[:, 0], sd["pos_embed"][:, 0])
    assert any("pos_embed resampled from grid (16, 16) to (37, 37)" in n for n in notes)


def test_config_key_loads_it_and_freezes(tmp_path: Path) -> None:
    sd = official_vits14(registers=4)
    path = tmp_path / "dinov2_vits14_reg4_pretrain.pth"
    torch.save(sd, path)
    cfg = load_train_config(None, [f"model.global_init={path}", "model.overrides={num_register_tokens: 4}"])
    student, notes = build_model(cfg)
    assert torch.equal(student.global_stream.vit.register_tokens, sd["register_tokens"])
    assert not any(p.requires_grad for p in student.global_stream.vit.parameters())
    assert all(p.requires_grad for p in student.local_stream.parameters())
    assert any(str(path) in n for n in notes)


def test_mismatches_are_named(model: torch.nn.Module, tmp_path: Path) -> None:
    registers = tmp_path / "reg4.safetensors"
    save_file(official_vits14(registers=4), str(registers))
    with pytest.raises(GlobalInitError, match=r"4 register tokens, the encoder 0: set model.overrides.num_register"):
        load_global_init(model, registers)
    base = {"cls_token": torch.zeros(1, 1, 768), "pos_embed": torch.zeros(1, 1 + 37 * 37, 768)}
    torch.save(base, tmp_path / "vitb.pth")
    with pytest.raises(GlobalInitError, match=r"ViT-B/14 \(dualstream_b\).*ViT-S/14 \(dualstream_s\)"):
        load_global_init(model, tmp_path / "vitb.pth")
    with pytest.raises(GlobalInitError, match="no such file"):
        load_global_init(model, tmp_path / "missing.pth")
    (tmp_path / "junk.pth").write_bytes(b"not a checkpoint")
    with pytest.raises(GlobalInitError, match="junk.pth"):
        load_global_init(model, tmp_path / "junk.pth")
