"""Layers checked against their definitions written out with plain tensor operations."""

from __future__ import annotations

import pytest
import torch

from perception.models.layers import Attention, Block, CrossAttention, LayerScale, sincos_2d
from perception.models.local_stream import LocalStream


def test_attention_matches_softmax_formula():
    torch.manual_seed(0)
    attn = Attention(16, num_heads=4).eval()
    x = torch.randn(2, 5, 16)
    qkv = attn.qkv(x).reshape(2, 5, 3, 4, 4).permute(2, 0, 3, 1, 4)
    q, k, v = qkv[0], qkv[1], qkv[2]
    weights = torch.softmax(q @ k.transpose(-1, -2) / 2.0, dim=-1)  # sqrt(head_dim 4) = 2
    expected = attn.proj((weights @ v).transpose(1, 2).reshape(2, 5, 16))
    assert torch.allclose(attn(x), expected, atol=1e-5)


def test_cross_attention_positions_steer_queries():
    torch.manual_seed(0)
    ca = CrossAttention(8, 12, 8, num_heads=1, out_dim=6)
    with torch.no_grad():
        ca.q.weight.zero_(); ca.q.bias.zero_(); ca.kv.weight.zero_(); ca.kv.bias.zero_()
        ca.kv.bias[8:] = torch.arange(8.0)  # every value is the same vector
    out = ca(torch.randn(1, 3, 8), torch.randn(1, 4, 12))
    assert out.shape == (1, 3, 6)
    assert torch.allclose(out, ca.proj(torch.arange(8.0)).expand(1, 3, 6), atol=1e-6)
    # With positions, a query attends most to the key sharing its position code.
    pos = sincos_2d(2, 2, 8) * 10
    with torch.no_grad():
        ca.kv.bias[8:] = 0
        ca.kv.weight[8:] = torch.eye(8, 12)
    ctx = torch.eye(4, 12).unsqueeze(0)
    ca.proj = torch.nn.Identity()
    read = ca(torch.zeros(1, 4, 8), ctx, query_pos=pos, key_pos=pos)
    assert torch.equal(read[0, :, :4].argmax(dim=1), torch.arange(4))


def test_block_without_layerscale_has_no_gamma():
    assert "ls1.gamma" not in Block(8, 2, init_values=None).state_dict()
    assert torch.equal(LayerScale(3, 0.5)(torch.ones(2, 3)), torch.full((2, 3), 0.5))


def test_local_stream_stride_and_channels():
    stream = LocalStream(channels=(4, 8, 12), depths=(1, 1, 1)).eval()
    out = stream(torch.rand(1, 3, 48, 64))
    assert out.shape == (1, 12, 6, 8) and stream.out_channels == 12


def test_sincos_codes_are_distinct_and_bounded():
    code = sincos_2d(3, 5, 16)[0]
    assert code.shape == (15, 16) and code.abs().max() <= 1.0
    sims = code @ code.T
    self_sim = sims.diagonal().clone()
    assert (self_sim > sims.fill_diagonal_(-1e9).max(dim=1).values + 0.5).all()


def test_folded_batchnorm_in_eval_equals_conv_then_norm():
    from perception.models.layers import ConvNormAct

    torch.manual_seed(0)
    block = ConvNormAct(4, 6, kernel_size=3, stride=2)
    with torch.no_grad():
        block.norm.running_mean.uniform_(-1, 1)
        block.norm.running_var.uniform_(0.5, 2)
        block.norm.weight.uniform_(0.5, 1.5)
        block.norm.bias.uniform_(-1, 1)
    block.eval()
    x = torch.randn(2, 4, 9, 11)
    expected = torch.relu(block.norm(block.conv(x)))
    assert torch.allclose(block(x), expected, atol=1e-5)
    assert block(x).shape == (2, 6, 5, 6)


def _ops_run(fn) -> set[str]:
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CPU]) as prof:
        fn()
    return {event.key for event in prof.key_averages()}


def _random_block(groups: int = 1):
    from perception.models.layers import ConvNormAct

    torch.manual_seed(1)
    block = ConvNormAct(6, 6, kernel_size=3, stride=1, groups=groups)
    with torch.no_grad():
        block.norm.running_mean.uniform_(-1, 1)
        block.norm.running_var.uniform_(0.5, 2)
        block.norm.weight.uniform_(0.5, 1.5)
        block.norm.bias.uniform_(-1, 1)
    return block.eval()


@pytest.mark.parametrize("groups", [1, 6])
def test_inference_fuses_conv_and_relu_with_the_same_values(groups):
    from perception.models.layers.conv import _MKLDNN_POINTWISE

    if not _MKLDNN_POINTWISE:
        pytest.skip("this torch build has no oneDNN pointwise convolution")
    block = _random_block(groups)
    x = torch.randn(1, 6, 24, 32).contiguous(memory_format=torch.channels_last)
    with torch.no_grad():
        expected = torch.relu(block.norm(block.conv(x)))
    with torch.inference_mode():
        ops = _ops_run(lambda: block(x))
        fused = block(x)
        assert "mkldnn::_convolution_pointwise" in ops and "aten::relu" not in ops
        assert torch.allclose(fused, expected, atol=1e-5)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            fused_bf16 = block(x)
        assert fused_bf16.dtype == torch.bfloat16
        assert torch.allclose(fused_bf16.float(), expected, atol=0.05 * float(expected.abs().max()))
        kept = float(block.conv.weight[0, 0, 0, 0])
        block.conv.weight[0, 0, 0, 0] = float("nan")                   # a poisoned weight stays visible
        poisoned = block(x)
        assert torch.isnan(poisoned[:, 0]).float().mean() > 0.5 and torch.isfinite(poisoned[:, 1:]).all()
        block.conv.weight[0, 0, 0, 0] = kept
    # with autograd on (online adaptation's updates) the plain ops run and gradients flow
    y = block(x.requires_grad_())
    assert "mkldnn::_convolution_pointwise" not in _ops_run(lambda: block(x))
    y.sum().backward()
    assert x.grad is not None and torch.allclose(y, expected, atol=1e-5)


def test_an_active_hook_on_the_activation_sees_the_pre_activation():
    """The BN-statistics tracker reads the folded output before the ReLU on measured frames: the unit must not fuse
    the ReLU away then, and may fuse it when the hook says it is idle."""
    block = _random_block()
    seen: list[torch.Tensor] = []

    class Hook:
        active = True

        def __call__(self, module, inputs):
            seen.append(inputs[0].clone())

    hook = Hook()
    block.act.register_forward_pre_hook(hook)
    x = torch.randn(1, 6, 12, 16)
    with torch.inference_mode():
        out = block(x)
        assert len(seen) == 1 and float(seen[0].min()) < 0.0        # before the ReLU
        assert torch.equal(out, torch.relu(seen[0]))
        hook.active = False
        block(x)
        assert len(seen) == 1                                        # fused: the act module never ran
