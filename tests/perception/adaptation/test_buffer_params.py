"""Ring buffer bounds and clip sampling; parameter subset selection; the config's refusals."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from perception.adaptation import AdaptationConfig, FrameBuffer, select_parameters, state_hash
from perception.config import ConfigError


def test_buffer_keeps_the_newest_frames_up_to_capacity():
    buf = FrameBuffer(capacity=4, size=(8, 10))
    for i in range(10):
        buf.push(torch.full((1, 3, 16, 20), i / 20.0))
    assert len(buf) == 4 and buf.pushed == 10
    values = [round(float(f.float().mean()) / 255.0 * 20) for f in buf.ordered()]
    assert values == [6, 7, 8, 9]
    assert all(f.dtype == torch.uint8 and f.shape == (3, 8, 10) for f in buf.ordered())
    stats = buf.statistics()
    assert stats["stored"] == 4 and stats["pushed"] == 10
    assert stats["mean_intensity"] == pytest.approx(sum(range(10)) / 10 / 20, abs=2e-3)


def test_clips_are_in_order_at_a_gap_that_fits():
    buf = FrameBuffer(capacity=6, size=(4, 4))
    for i in range(6):
        buf.push(torch.full((3, 4, 4), i / 10.0))
    g = torch.Generator().manual_seed(0)
    seen_gaps = set()
    for _ in range(40):
        clip = buf.sample_clip(3, gaps=(1, 2, 4), generator=g)
        assert clip.shape == (3, 3, 4, 4) and clip.dtype == torch.float32
        idx = [round(float(f.mean()) * 10) for f in clip]
        gap = idx[1] - idx[0]
        assert idx[2] - idx[1] == gap and gap in (1, 2)   # gap 4 does not fit 6 frames for a 3-frame clip
        seen_gaps.add(gap)
    assert seen_gaps == {1, 2}
    with pytest.raises(ValueError, match="hold no clip"):
        FrameBuffer(capacity=6, size=(4, 4)).sample_clip(3, gaps=(1,))


def test_inference_tensors_can_be_buffered_and_trained_on():
    buf = FrameBuffer(capacity=2, size=(4, 4))
    with torch.inference_mode():
        buf.push(torch.rand(1, 3, 8, 8))
        buf.push(torch.rand(1, 3, 8, 8))
    clip = buf.sample_clip(2, gaps=(1,))
    w = nn.Parameter(torch.ones(()))
    (clip * w).sum().backward()
    assert w.grad is not None and float(w.grad) > 0


def test_norm_subset_is_the_normalisation_affine_parameters(tiny):
    subset = select_parameters(tiny, "norm")
    assert subset and all(("norm" in n) for n in subset)
    assert all(n.endswith((".weight", ".bias")) for n in subset)
    total = sum(p.numel() for p in tiny.parameters())
    assert sum(p.numel() for p in subset.values()) < 0.02 * total
    extra = select_parameters(tiny, "norm", patterns=["fusion.*proj*"])
    assert set(subset) < set(extra)
    only = select_parameters(tiny, "patterns", patterns=["global_stream.vit.norm.*"])
    assert sorted(only) == ["global_stream.vit.norm.bias", "global_stream.vit.norm.weight"]
    with pytest.raises(ValueError, match="selects no parameter"):
        select_parameters(tiny, "patterns", patterns=["nothing*"])


def test_state_hash_changes_with_any_value(tiny):
    sd = {k: v.clone() for k, v in tiny.state_dict().items()}
    h = state_hash(sd)
    assert h == state_hash(tiny.state_dict())
    sd["fusion.embed_norm.bias"][0] += 1e-6
    assert state_hash(sd) != h


def test_config_refuses_bad_values_naming_the_field():
    with pytest.raises(ConfigError, match="adaptation.params"):
        AdaptationConfig(params="all")
    with pytest.raises(ConfigError, match="compute_share"):
        AdaptationConfig(compute_share=0.0)
    with pytest.raises(ConfigError, match="does not fit"):
        AdaptationConfig(buffer_size=4, clip_length=3, gaps=(2,))
