"""``NormStatsTracker``: BN statistics move toward the served frames' (through ConvNormAct's folded BN), copies of
the model do not track, reset restores the source; the adapter trains under the tracked statistics."""

from __future__ import annotations

import copy

import torch

from perception.adaptation import OnlineAdapter
from perception.adaptation.norm_stats import NormStatsTracker, bn_modules, read_stats

from .conftest import small_cfg


def encode(model, x):
    with torch.inference_mode():
        return model.encode(x, None)[0].dense


def test_statistics_follow_the_stream_and_reset_restores_the_source(tiny):
    tracker = NormStatsTracker(tiny, momentum=1.0)
    assert len(tracker._handles) == len(bn_modules(tiny)) > 0
    dark = torch.rand(1, 3, 48, 64) * 0.1
    stem_block = tiny.local_stream.layers[0]
    seen = []
    handle = stem_block.register_forward_hook(lambda m, inputs, out: seen.append(inputs[0].clone()))
    first = encode(tiny, dark)                       # normalised with the source statistics, then tracked
    handle.remove()
    stem = next(iter(bn_modules(tiny).values()))
    with torch.no_grad():
        expected = stem_block.conv(seen[0]).mean((0, 2, 3))
    assert torch.allclose(stem.running_mean, expected, atol=1e-5)
    second = encode(tiny, dark)
    assert not torch.allclose(first, second)         # the second frame used the dark frame's statistics
    copy_model = copy.deepcopy(tiny)                 # the adapter's worker copy: hooks there do nothing
    before = read_stats(copy_model)
    encode(copy_model, torch.rand(1, 3, 48, 64))
    assert all(torch.equal(before[k], v) for k, v in read_stats(copy_model).items())
    tracker.reset()
    assert all(torch.equal(tracker.source[k], v) for k, v in read_stats(tiny).items())


def test_adapter_trains_under_the_tracked_statistics_and_reset_restores_them(tiny):
    adapter = OnlineAdapter(tiny, small_cfg(norm_stats_momentum=0.5))
    source = read_stats(tiny)
    for i in range(6):
        x = (torch.rand(1, 3, 48, 64) * 0.2).clamp(0, 1)
        adapter.before_frame()
        encode(tiny, x)
        adapter.after_frame(x)
    assert adapter.step() is not None
    worker = read_stats(adapter.worker_model)
    assert all(torch.equal(worker[k], v) for k, v in adapter._stats.items())
    assert any(not torch.equal(source[k], v) for k, v in worker.items())
    adapter.reset()
    adapter.before_frame()
    assert all(torch.equal(source[k], v) for k, v in read_stats(tiny).items())
