"""One sweep over every registered encoder: shapes, finiteness, gradients, determinism, keyframes, state."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from perception.models import EncoderState, create_encoder, list_encoders

# The sweep keeps the global stream small (global_scale 0.25) so ViT-B stays fast on 2 CPU cores.
SCALE = 0.25


@pytest.fixture(scope="module", params=list_encoders())
def encoder(request):
    torch.manual_seed(0)
    return create_encoder(request.param, global_every=3, global_scale=SCALE).eval()


def frames(batch: int, height: int, width: int, seed: int) -> torch.Tensor:
    gen = torch.Generator().manual_seed(seed)
    return torch.rand(batch, 3, height, width, generator=gen)


def test_every_encoder_is_registered():
    assert {"dualstream_tiny", "dualstream_s", "dualstream_b"} <= set(list_encoders())


def test_shapes_at_640x480(encoder):
    with torch.inference_mode():
        out, state = encoder.encode(frames(1, 480, 640, 0))
    assert encoder.stride == 8
    assert out.dense.shape == (1, encoder.out_channels, 60, 80)
    assert out.global_embedding.shape == (1, encoder.embed_dim)
    assert out.local.shape[-2:] == (60, 80)
    # 480x640 at scale 0.25 = 120x160, rounded to multiples of 14: 126x154 -> a 9x11 token grid.
    assert state.global_grid == (9, 11)
    assert out.global_tokens.shape == (1, 99, encoder.global_stream.embed_dim)
    assert out.keyframe.tolist() == [True]
    assert torch.isfinite(out.dense).all() and torch.isfinite(out.global_embedding).all()
    assert state.frame_index == 1


def test_odd_size_and_batch(encoder):
    with torch.inference_mode():
        out, state = encoder.encode(frames(2, 101, 77, 1))
    assert out.dense.shape == (2, encoder.out_channels, 13, 10)  # ceil(101/8), ceil(77/8)
    assert out.global_embedding.shape == (2, encoder.embed_dim)
    assert torch.isfinite(out.dense).all()
    assert state.memory.shape[0] == 2


def test_backward_reaches_every_used_parameter(encoder):
    # The ViT's middle blocks are frozen to keep ViT-B cheap; gradients still flow through them to block 0.
    blocks = encoder.global_stream.vit.blocks
    frozen = {f"global_stream.vit.blocks.{i}." for i in range(1, len(blocks) - 1)}
    for i in range(1, len(blocks) - 1):
        blocks[i].requires_grad_(False)
    encoder.zero_grad(set_to_none=True)
    encoder.train()
    try:
        out = encoder(frames(2, 64, 96, 2))
        loss = out.dense.float().square().mean() + out.global_embedding.float().square().mean()
        loss.backward()
    finally:
        encoder.eval()
        encoder.requires_grad_(True)
    unused = {"global_stream.vit.mask_token"}  # only used with masks (masked-image objectives)
    for name, param in encoder.named_parameters():
        if name in unused or any(name.startswith(f) for f in frozen):
            assert param.grad is None, f"{name} is frozen or unused but got a gradient"
            continue
        assert param.grad is not None, f"{name} got no gradient"
        assert torch.isfinite(param.grad).all(), f"{name} has a non-finite gradient"
    assert sum(float(p.grad.abs().sum()) for p in encoder.parameters() if p.grad is not None) > 0


def test_same_inputs_and_state_give_identical_outputs(encoder):
    with torch.inference_mode():
        _, state = encoder.encode(frames(1, 64, 80, 3))
        a, state_a = encoder.encode(frames(1, 64, 80, 4), state)
        b, state_b = encoder.encode(frames(1, 64, 80, 4), state)
    assert torch.equal(a.dense, b.dense) and torch.equal(a.global_embedding, b.global_embedding)
    assert torch.equal(state_a.memory, state_b.memory)
    assert state.frame_index == 1  # the input state is not changed


def test_keyframe_schedule_reuses_global_tokens(encoder):
    flags, tokens = [], []
    state = encoder.init_state(1)
    with torch.inference_mode():
        for i in range(7):
            out, state = encoder.encode(frames(1, 56, 56, 10 + i), state)
            flags.append(bool(out.keyframe[0]))
            tokens.append(out.global_tokens)
    assert flags == [True, False, False, True, False, False, True]  # global_every=3
    assert torch.equal(tokens[1], tokens[0]) and torch.equal(tokens[2], tokens[0])
    assert not torch.allclose(tokens[3], tokens[0])
    assert state.frame_index == 7


def test_carried_state_changes_output_against_fresh_state(encoder):
    first, second = frames(1, 56, 84, 20), frames(1, 56, 84, 21)
    with torch.inference_mode():
        _, state = encoder.encode(first)
        carried, _ = encoder.encode(second, state)  # not a keyframe: reuses the first frame's global tokens
        fresh, _ = encoder.encode(second)
        # A keyframe with history: same image, different memory -> different output.
        key_state = dataclasses.replace(state, frame_index=3)
        with_memory, next_state = encoder.encode(second, key_state)
    assert not carried.keyframe[0] and fresh.keyframe[0] and with_memory.keyframe[0]
    assert (carried.dense - fresh.dense).abs().max() > 1e-4
    assert torch.equal(with_memory.global_tokens, fresh.global_tokens)
    assert (with_memory.dense - fresh.dense).abs().max() > 1e-6
    assert not torch.equal(next_state.memory, state.memory)


def test_state_batch_mismatch_and_bad_frames_are_refused():
    enc = create_encoder("dualstream_tiny").eval()
    with torch.inference_mode():
        _, state = enc.encode(frames(2, 32, 32, 0))
        with pytest.raises(ValueError, match="batch 2 but frames have batch 1"):
            enc.encode(frames(1, 32, 32, 0), state)
        with pytest.raises(ValueError, match="made for batch 3 but frames have batch 1"):
            enc.encode(frames(1, 32, 32, 0), enc.init_state(3))
        with pytest.raises(ValueError, match=r"\(B, 3, H, W\)"):
            enc.encode(torch.rand(1, 1, 32, 32))
        with pytest.raises(ValueError, match="float"):
            enc.encode(torch.zeros(1, 3, 32, 32, dtype=torch.uint8))


def test_init_state_is_empty():
    state = create_encoder("dualstream_tiny").init_state(3)
    assert isinstance(state, EncoderState)
    assert state.memory is None and state.global_tokens is None and state.frame_index == 0


def test_bfloat16_autocast_stays_close_to_float32():
    torch.manual_seed(0)
    enc = create_encoder("dualstream_tiny").eval()
    x = frames(1, 96, 128, 30)
    with torch.inference_mode():
        ref, _ = enc.encode(x)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            low, state = enc.encode(x)
    assert low.dense.dtype == torch.bfloat16 and torch.isfinite(low.dense.float()).all()
    err = (low.dense.float() - ref.dense).norm() / ref.dense.norm()
    assert err < 0.02, f"relative error of bf16 dense features {float(err):.3f}"
    cos = torch.nn.functional.cosine_similarity(low.global_embedding.float(), ref.global_embedding, dim=1)
    assert float(cos) > 0.999


def test_pooled_fusion_queries_keep_the_dense_grid():
    torch.manual_seed(0)
    full = create_encoder("dualstream_tiny").eval()
    pooled = create_encoder("dualstream_tiny", fusion_query_pool=2).eval()
    pooled.load_state_dict(full.state_dict())  # same parameters: only the query resolution differs
    x = frames(1, 101, 77, 40)
    with torch.inference_mode():
        a, b = full(x), pooled(x)
    assert b.dense.shape == a.dense.shape == (1, 32, 13, 10)
    assert torch.isfinite(b.dense).all()
    # The local path is identical, the global read is coarser: close but not equal.
    diff = (a.dense - b.dense).norm() / a.dense.norm()
    assert 0 < float(diff) < 0.5
