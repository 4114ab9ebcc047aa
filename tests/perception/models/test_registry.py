"""Registry: names, overrides, errors; the default encoder's global stream is exactly ViT-S/14."""

from __future__ import annotations

import pytest
import torch

from perception.models import create_encoder, list_encoders, register_encoder
from perception.models.registry import encoder_parameters


def test_unknown_name_lists_known_ones():
    with pytest.raises(ValueError, match="unknown encoder 'nope'; known encoders: dualstream_b, dualstream_s"):
        create_encoder("nope")


def test_unknown_option_is_refused():
    with pytest.raises(ValueError, match=r"unknown option\(s\) \['global_evry'\]"):
        create_encoder("dualstream_tiny", global_evry=2)


def test_overrides_reach_the_model():
    enc = create_encoder("dualstream_tiny", global_every=5, global_scale=0.75, out_channels=16, embed_dim=20)
    assert (enc.global_every, enc.global_scale, enc.out_channels, enc.embed_dim) == (5, 0.75, 16, 20)
    assert enc.encoder_name == "dualstream_tiny"
    assert "global_every" in encoder_parameters("dualstream_s")


def test_dualstream_s_global_stream_is_vit_s14():
    vit = create_encoder("dualstream_s").global_stream.vit
    assert (vit.embed_dim, len(vit.blocks), vit.num_heads, vit.patch_size) == (384, 12, 6, 14)
    assert vit.blocks[0].mlp.fc1.out_features == 1536
    assert vit.pos_embed.shape == (1, 1370, 384)
    assert sum(p.numel() for p in vit.parameters()) == 22_056_576  # DINOv2 ViT-S/14: 22.06 M


def test_register_and_duplicate_names():
    @register_encoder("test_dummy_encoder")
    def dummy(width: int = 3) -> torch.nn.Module:
        return torch.nn.Linear(width, width)

    assert "test_dummy_encoder" in list_encoders()
    assert create_encoder("test_dummy_encoder", width=4).out_features == 4
    with pytest.raises(ValueError, match="already registered"):
        register_encoder("test_dummy_encoder")(lambda: None)
