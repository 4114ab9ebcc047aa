"""Weights kept in the autocast dtype between frames (perception/models/layers/cast_cache.py) and the folded,
cast convolution weights of the local stream: same values as without the cache, never stale."""

from __future__ import annotations

import copy

import torch
from torch import nn

from perception.models.layers.cast_cache import CastCachedLinear, cache_inference_casts


def _ops(fn) -> list[str]:
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CPU]) as prof:
        fn()
    return [e.key for e in prof.key_averages() for _ in range(e.count)]


def _model() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(8, 16), nn.GELU(), nn.Linear(16, 4, bias=False))


def test_cached_linear_equals_autocast_linear_and_casts_once():
    plain, cached = _model().eval(), _model().eval()
    assert cache_inference_casts(cached) == 2 and all(type(m) is CastCachedLinear for m in (cached[0], cached[2]))
    assert plain.state_dict().keys() == cached.state_dict().keys()
    x = torch.randn(5, 8)
    with torch.inference_mode(), torch.autocast("cpu", dtype=torch.bfloat16):
        expected = plain(x)
        first = cached(x)
        casts = _ops(lambda: cached(x)).count("aten::_to_copy")      # the input only, not the weights
        again = cached(x)
    assert first.dtype == expected.dtype == torch.bfloat16
    assert torch.equal(first, expected) and torch.equal(again, expected)
    assert casts == 1


def test_in_place_update_or_new_parameter_is_never_served_stale():
    model = _model().eval()
    cache_inference_casts(model)
    reference = copy.deepcopy(model)
    x = torch.randn(3, 8)

    def run(m):
        with torch.inference_mode(), torch.autocast("cpu", dtype=torch.bfloat16):
            return m(x)

    run(model)
    with torch.no_grad():                                  # an adaptation swap: copy_ into the serving weights
        for m in (model, reference):
            m[0].weight.copy_(m[0].weight * 2.0)
    fresh = copy.deepcopy(reference)
    fresh[0].__dict__.pop("_inference_cache", None)
    assert torch.equal(run(model), run(fresh))
    model[2].weight = nn.Parameter(torch.zeros_like(model[2].weight))   # a new tensor object
    assert float(run(model).abs().max()) == 0.0


def test_training_and_fp32_use_the_plain_linear():
    model = _model()
    cache_inference_casts(model)
    x = torch.randn(4, 8, requires_grad=True)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        y = model(x)
    y.float().sum().backward()                              # gradients reach the weights through autocast's cast
    assert model[0].weight.grad is not None and "_inference_cache" not in model[0].__dict__
    with torch.inference_mode():
        assert model(x.detach()).dtype == torch.float32     # no autocast: fp32 as nn.Linear


def test_conv_unit_folded_cache_follows_batchnorm_statistics():
    from perception.models.layers import ConvNormAct
    from perception.models.layers.conv import _MKLDNN_POINTWISE

    torch.manual_seed(2)
    block = ConvNormAct(6, 8, kernel_size=3).eval()
    x = torch.randn(1, 6, 16, 20).contiguous(memory_format=torch.channels_last)

    def expected():
        with torch.no_grad():
            return torch.relu(block.norm(block.conv(x)))

    with torch.inference_mode():
        first = block(x)
        assert torch.allclose(first, expected(), atol=1e-5)
        block.norm.running_mean.add_(0.5)                   # the BN-statistics tracker's in-place update
        block.norm.running_var.mul_(2.0)
        second = block(x)
    assert torch.allclose(second, expected(), atol=1e-5) and not torch.allclose(first, second, atol=1e-3)
    if _MKLDNN_POINTWISE:
        assert "_inference_cache" in block.__dict__
        with torch.inference_mode():
            assert "aten::rsqrt" not in _ops(lambda: block(x))   # the fold is not recomputed for an unchanged unit
    clone = copy.deepcopy(block)                             # the adapter's worker copy takes the cache along
    with torch.inference_mode():
        assert torch.equal(clone(x), block(x))
