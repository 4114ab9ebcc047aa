"""DINOv2 compatibility: official parameter names and shapes load strictly, and the ViT computes DINOv2's
forward pass (checked against an independent functional re-statement of it)."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from perception.models import StateDictError, create_encoder, load_dinov2_state_dict
from perception.models.vit import VisionTransformer, interpolate_pos_embed


def official_vits14_shapes(num_registers: int = 0) -> dict[str, tuple[int, ...]]:
    """Keys and shapes of facebookresearch/dinov2 ``dinov2_vits14[_reg4]_pretrain.pth``, written out by hand."""
    d, hidden = 384, 1536
    shapes: dict[str, tuple[int, ...]] = {
        "cls_token": (1, 1, d),
        "pos_embed": (1, 1 + 37 * 37, d),
        "mask_token": (1, d),
        "patch_embed.proj.weight": (d, 3, 14, 14),
        "patch_embed.proj.bias": (d,),
        "norm.weight": (d,),
        "norm.bias": (d,),
    }
    if num_registers:
        shapes["register_tokens"] = (1, num_registers, d)
    for i in range(12):
        b = f"blocks.{i}."
        shapes.update({
            b + "norm1.weight": (d,), b + "norm1.bias": (d,),
            b + "attn.qkv.weight": (3 * d, d), b + "attn.qkv.bias": (3 * d,),
            b + "attn.proj.weight": (d, d), b + "attn.proj.bias": (d,),
            b + "ls1.gamma": (d,),
            b + "norm2.weight": (d,), b + "norm2.bias": (d,),
            b + "mlp.fc1.weight": (hidden, d), b + "mlp.fc1.bias": (hidden,),
            b + "mlp.fc2.weight": (d, hidden), b + "mlp.fc2.bias": (d,),
            b + "ls2.gamma": (d,),
        })
    return shapes


def random_state(shapes: dict[str, tuple[int, ...]], seed: int = 0) -> dict[str, torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    return {k: torch.randn(s, generator=gen) * 0.02 for k, s in shapes.items()}


@pytest.fixture(scope="module")
def encoder_s():
    return create_encoder("dualstream_s")


def test_official_vits14_loads_strictly(encoder_s):
    vit = encoder_s.global_stream.vit
    assert set(vit.state_dict()) == set(official_vits14_shapes())
    sd = random_state(official_vits14_shapes())
    result = vit.load_state_dict(sd, strict=True)
    assert not result.missing_keys and not result.unexpected_keys
    assert torch.equal(vit.blocks[11].mlp.fc2.weight, sd["blocks.11.mlp.fc2.weight"])


def test_helper_strips_prefixes_and_flattens_chunked_blocks(encoder_s):
    sd = random_state(official_vits14_shapes(), seed=1)
    chunked = {}
    for key, value in sd.items():
        if key.startswith("blocks."):
            index = int(key.split(".")[1])
            key = f"blocks.{index // 3}.{index}." + key.split(".", 2)[2]  # block_chunks=4
        chunked["teacher.backbone." + key] = value
    chunked["teacher.dino_head.last_layer.weight"] = torch.zeros(8, 4)
    notes = load_dinov2_state_dict(encoder_s.global_stream.vit, chunked)
    assert notes and torch.equal(encoder_s.global_stream.vit.blocks[7].attn.qkv.bias, sd["blocks.7.attn.qkv.bias"])
    module_sd = {"module." + k: v for k, v in sd.items()}
    load_dinov2_state_dict(encoder_s.global_stream.vit, module_sd)


def test_registers_variant_loads():
    vit = create_encoder("dualstream_s", num_register_tokens=4).global_stream.vit
    sd = random_state(official_vits14_shapes(num_registers=4), seed=2)
    assert load_dinov2_state_dict(vit, sd) == []
    assert torch.equal(vit.register_tokens, sd["register_tokens"])


def test_wrong_shape_error_names_key_and_both_shapes(encoder_s):
    sd = random_state(official_vits14_shapes())
    sd["blocks.3.attn.qkv.weight"] = torch.zeros(1000, 384)
    del sd["norm.bias"]
    sd["extra.weight"] = torch.zeros(1)
    with pytest.raises(StateDictError) as info:
        load_dinov2_state_dict(encoder_s.global_stream.vit, sd)
    message = str(info.value)
    assert "blocks.3.attn.qkv.weight: checkpoint (1000, 384) vs model (1152, 384)" in message
    assert "missing keys (1): norm.bias" in message and "unexpected keys (1): extra.weight" in message


def test_pos_embed_of_another_grid_is_resampled(encoder_s):
    sd = random_state(official_vits14_shapes())
    sd["pos_embed"] = torch.randn(1, 1 + 16 * 16, 384)  # a checkpoint trained at 224
    notes = load_dinov2_state_dict(encoder_s.global_stream.vit, sd)
    assert any("(16, 16) to (37, 37)" in n for n in notes)
    got = encoder_s.global_stream.vit.pos_embed
    assert got.shape == (1, 1370, 384)
    assert torch.equal(got[:, 0], sd["pos_embed"][:, 0])
    assert torch.allclose(got, interpolate_pos_embed(sd["pos_embed"], (37, 37)))


def reference_dinov2_forward(sd: dict, x: torch.Tensor, heads: int, registers: int) -> torch.Tensor:
    """DINOv2's forward (prepare_tokens_with_masks, pre-norm blocks with LayerScale, final norm), restated with
    functional ops on the raw state dict. Returns the normalised tokens ``[cls, registers, patches]``."""
    def ln(t, p):
        return F.layer_norm(t, t.shape[-1:], sd[p + ".weight"], sd[p + ".bias"], eps=1e-6)

    tokens = F.conv2d(x, sd["patch_embed.proj.weight"], sd["patch_embed.proj.bias"], stride=14)
    tokens = tokens.flatten(2).transpose(1, 2)
    pos = sd["pos_embed"]
    if pos.shape[1] != tokens.shape[1] + 1:  # DINOv2's interpolate_pos_encoding (offset 0.1, models w/o registers)
        side = int((pos.shape[1] - 1) ** 0.5)
        h0, w0 = x.shape[-2] // 14, x.shape[-1] // 14
        grid = pos[:, 1:].reshape(1, side, side, -1).permute(0, 3, 1, 2)
        kwargs = {"size": (h0, w0), "antialias": True} if registers else {
            "scale_factor": ((h0 + 0.1) / side, (w0 + 0.1) / side)}
        grid = F.interpolate(grid, mode="bicubic", **kwargs)
        pos = torch.cat([pos[:, :1], grid.permute(0, 2, 3, 1).reshape(1, h0 * w0, -1)], 1)
    tokens = torch.cat([sd["cls_token"].expand(x.shape[0], -1, -1), tokens], 1) + pos
    if registers:
        tokens = torch.cat([tokens[:, :1], sd["register_tokens"].expand(x.shape[0], -1, -1), tokens[:, 1:]], 1)
    b, n, d = tokens.shape
    i = 0
    while f"blocks.{i}.norm1.weight" in sd:
        p = f"blocks.{i}."
        qkv = F.linear(ln(tokens, p + "norm1"), sd[p + "attn.qkv.weight"], sd[p + "attn.qkv.bias"])
        q, k, v = qkv.reshape(b, n, 3, heads, d // heads).permute(2, 0, 3, 1, 4)
        attn = torch.softmax(q @ k.transpose(-2, -1) * (d // heads) ** -0.5, dim=-1) @ v
        attn = F.linear(attn.transpose(1, 2).reshape(b, n, d), sd[p + "attn.proj.weight"], sd[p + "attn.proj.bias"])
        tokens = tokens + attn * sd[p + "ls1.gamma"]
        hidden = F.gelu(F.linear(ln(tokens, p + "norm2"), sd[p + "mlp.fc1.weight"], sd[p + "mlp.fc1.bias"]))
        tokens = tokens + F.linear(hidden, sd[p + "mlp.fc2.weight"], sd[p + "mlp.fc2.bias"]) * sd[p + "ls2.gamma"]
        i += 1
    return ln(tokens, "norm")


@pytest.mark.parametrize("size", [(56, 56), (42, 98)])
@pytest.mark.parametrize("registers", [0, 2])
def test_forward_matches_dinov2_reference(registers, size):
    torch.manual_seed(3)
    vit = VisionTransformer(img_size=56, embed_dim=48, depth=2, num_heads=3, num_register_tokens=registers).eval()
    with torch.no_grad():
        for p in vit.parameters():
            p.normal_(0, 0.3)
    sd = {k: v.clone() for k, v in vit.state_dict().items()}
    x = torch.randn(2, 3, *size)
    with torch.no_grad():
        out = vit.forward_features(x)
        ref = reference_dinov2_forward(sd, x, heads=3, registers=registers)
    assert torch.allclose(out["x_norm_clstoken"], ref[:, 0], atol=1e-5)
    assert torch.allclose(out["x_norm_regtokens"], ref[:, 1:1 + registers], atol=1e-5)
    assert torch.allclose(out["x_norm_patchtokens"], ref[:, 1 + registers:], atol=1e-5)
