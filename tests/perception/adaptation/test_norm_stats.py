"""``NormStatsTracker``: BN statistics read from the serving forward's own activations (through ConvNormAct's folded
BN, without running a convolution again), folded in only at frame boundaries, every N-th frame; copies of the model
do not track; load/reset replace them. The adapter trains under the tracked statistics, rolls them back with its
snapshot, resets them on fallback (and stops tracking) and persists them."""

from __future__ import annotations

import copy

import pytest
import torch
from torch import nn

from perception.adaptation import FALLBACK_SOURCE, OnlineAdapter
from perception.adaptation.exposure import ExposureBand
from perception.adaptation.norm_stats import NormStatsTracker, bn_modules, channel_stats, read_stats
from perception.adaptation.params import sets_equal
from perception.models import create_encoder

from .conftest import small_cfg


def encode(model, x, bf16: bool = False):
    with torch.inference_mode(), torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
        return model.encode(x, None)[0].dense


def conv_outputs(model, x) -> dict[str, torch.Tensor]:
    """Per BN of a ConvNormAct unit: the plain convolution's output on ``x`` (what the BN normalises)."""
    norms = {id(m): n for n, m in bn_modules(model).items()}
    seen: dict[str, torch.Tensor] = {}
    handles = [m.register_forward_hook(lambda mod, inputs, out, n=norms[id(m.norm)]: seen.__setitem__(
               n, mod.conv(inputs[0]).detach().float()))
               for m in model.modules() if isinstance(getattr(m, "norm", None), nn.BatchNorm2d)]
    with torch.no_grad():
        model.encode(x, None)
    for h in handles:
        h.remove()
    return seen


def test_channel_stats_match_torch():
    x = torch.randn(2, 5, 16, 12) * 3 + 1
    for layout in (x, x.contiguous(memory_format=torch.channels_last), x.to(torch.bfloat16)):
        mean, var = channel_stats(layout)
        ref = layout.float()
        assert torch.allclose(mean, ref.mean((0, 2, 3)), atol=1e-5)
        assert torch.allclose(var, ref.var((0, 2, 3)), rtol=1e-4)


def test_statistics_come_from_the_served_activations_and_change_only_at_frame_boundaries(tiny):
    dark = torch.rand(1, 3, 48, 64) * 0.1
    expected = conv_outputs(tiny, dark)                # each BN's input on this frame, source statistics upstream
    calls = []
    convs = [m.conv for m in tiny.modules() if isinstance(getattr(m, "norm", None), nn.BatchNorm2d)]
    counters = [c.register_forward_hook(lambda *a: calls.append(1)) for c in convs]
    tracker = NormStatsTracker(tiny, momentum=1.0)
    assert len(tracker._handles) == len(bn_modules(tiny)) > 0
    source = read_stats(tiny)
    tracker.begin_frame()
    first = encode(tiny, dark)
    assert len(calls) == 0                              # folded inference: no convolution module runs, none reruns
    assert sets_equal(read_stats(tiny), source)        # nothing moves while the frame is served
    assert tracker.begin_frame() is True               # the frame boundary folds the frame in (momentum 1: replaced)
    for name, norm in bn_modules(tiny).items():
        z = expected[name]
        if name == next(iter(expected)):               # the stem: its input is the frame itself, exact to float
            assert torch.allclose(norm.running_mean, z.mean((0, 2, 3)), atol=1e-5)
            assert torch.allclose(norm.running_var, z.var((0, 2, 3)), rtol=1e-3, atol=1e-6)
    for c in counters:
        c.remove()
    second = encode(tiny, dark)
    assert not torch.allclose(first, second)           # the second frame used the dark frame's statistics
    copy_model = copy.deepcopy(tiny)                   # the adapter's worker copy: hooks there do nothing
    before = read_stats(copy_model)
    tracker.begin_frame()
    encode(copy_model, torch.rand(1, 3, 48, 64))
    tracker.begin_frame()
    assert sets_equal(read_stats(copy_model), before)
    tracker.reset()
    assert sets_equal(read_stats(tiny), tracker.source)


def test_every_nth_frame_and_bf16_activations_agree_with_float(tiny):
    """every=2 measures frames 0 and 2, each folded in with 1 - (1 - m)^2 (the per-frame time scale kept)."""
    frames = [torch.rand(1, 3, 48, 64) * 0.3 for _ in range(4)]
    exact, model = NormStatsTracker(tiny, momentum=0.75), copy.deepcopy(tiny)
    sparse = NormStatsTracker(model, momentum=0.5, every=2)
    assert sparse.commit_momentum == 0.75
    for i, x in enumerate(frames):
        sparse.begin_frame()
        encode(model, x, bf16=True)                    # measures frames 0 and 2 only
        if i % 2 == 0:
            exact.begin_frame()
            encode(tiny, x)                            # float, fed frames 0 and 2 at momentum 0.75
    exact.begin_frame(), sparse.begin_frame()
    assert (exact.commits, sparse.commits) == (2, 2)
    # from bf16 activations the statistics land within 3% of the float ones' move away from the source
    for key, value in read_stats(model).items():
        ref, src = read_stats(tiny)[key], exact.source[key]
        assert (value - ref).abs().max() <= 0.03 * (ref - src).abs().max() + 1e-4, key


def test_hook_on_a_shared_activation_is_refused():
    act = nn.ReLU()

    class Unit(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.conv, self.norm, self.act = nn.Conv2d(3, 3, 1), nn.BatchNorm2d(3), act

    model = nn.Sequential(Unit(), Unit())
    with pytest.raises(ValueError, match="shared"):
        NormStatsTracker(model)


def stream(adapter, model, count, scale=0.2, seed=0):
    g = torch.Generator().manual_seed(seed)
    for _ in range(count):
        x = (torch.rand(1, 3, 48, 64, generator=g) * scale).clamp(0, 1)
        adapter.before_frame()
        encode(model, x)
        adapter.after_frame(x)


def test_adapter_trains_under_the_tracked_statistics_and_reset_restores_them(tiny):
    adapter = OnlineAdapter(tiny, small_cfg(norm_stats_momentum=0.5, norm_stats_every=1))
    source = read_stats(tiny)
    stream(adapter, tiny, 6)
    assert adapter.step() is not None
    worker = read_stats(adapter.worker_model)
    assert sets_equal(worker, adapter._stats)
    assert not sets_equal(source, worker)
    adapter.reset()
    adapter.before_frame()
    assert sets_equal(read_stats(tiny), source) and adapter.norm_stats.enabled


def test_rollback_restores_the_snapshot_statistics_and_fallback_serves_the_source(tiny):
    adapter = OnlineAdapter(tiny, small_cfg(norm_stats_momentum=0.5, norm_stats_every=1, snapshot_every=1, max_trips=2))
    source = read_stats(tiny)
    stream(adapter, tiny, 6)
    assert adapter.step().action == "snapshot"
    snap_stats = {k: v.clone() for k, v in adapter.snapshot_stats.items()}
    assert not sets_equal(snap_stats, source)
    stream(adapter, tiny, 3, scale=1.0, seed=1)        # the served statistics move on past the snapshot
    assert not sets_equal(read_stats(tiny), snap_stats)
    adapter.guard.cfg.drift_max = -1.0                 # every check trips from here on
    assert adapter.step().action == "rollback"
    adapter.before_frame()                             # the rollback lands with its weights at the boundary
    assert sets_equal(read_stats(tiny), snap_stats) and sets_equal(adapter.serving, adapter.snapshot)
    encode(tiny, torch.rand(1, 3, 48, 64))
    adapter.after_frame(torch.rand(1, 3, 48, 64))
    assert adapter.step().action == "fallback" and adapter.guard.status == FALLBACK_SOURCE
    stream(adapter, tiny, 4, scale=1.0, seed=2)        # served after the fallback: source weights and statistics
    assert sets_equal(read_stats(tiny), source) and sets_equal(adapter.serving, adapter.source)
    assert not adapter.norm_stats.enabled


def test_statistics_are_saved_and_resumed(tiny, tmp_path):
    adapter = OnlineAdapter(tiny, small_cfg(norm_stats_momentum=0.5, norm_stats_every=1, state_dir=str(tmp_path)))
    source = read_stats(tiny)
    stream(adapter, tiny, 6)
    adapter.step()
    saved = {k: v.clone() for k, v in adapter._stats.items()}
    adapter.save()
    torch.manual_seed(0)
    fresh = create_encoder("dualstream_tiny").eval()   # the source model again (as the fixture builds it)
    assert sets_equal(read_stats(fresh), source)
    resumed = OnlineAdapter(fresh, small_cfg(norm_stats_momentum=0.5, norm_stats_every=1, state_dir=str(tmp_path)))
    assert resumed.resume().resumed
    resumed.before_frame()
    assert sets_equal(read_stats(fresh), saved) and not sets_equal(saved, source)


def test_gated_tracking_moves_statistics_only_under_a_photometric_shift(tiny):
    """``norm_stats_gated``: frames inside the band (uniform noise: luma mean 0.50, contrast 0.22) are not
    measured; dark ones (x 0.2: mean 0.10) are, from the frame after the first dark one; when the stream is bright
    again, the frame measured while the gate was open is folded in, then the gate closes and the source statistics
    come back. (The uniform noise would open the noise gate: it is off here.)"""
    adapter = OnlineAdapter(tiny, small_cfg(norm_stats_momentum=0.5, norm_stats_every=1, norm_stats_gated=True,
                                            norm_stats_gate_noise=0.0))
    source = read_stats(tiny)
    stream(adapter, tiny, 6, scale=1.0)
    mean, contrast = adapter.stats_gate.last
    assert mean == pytest.approx(0.50, abs=0.02) and contrast == pytest.approx(0.216, abs=0.01)
    assert adapter.norm_stats.commits == 0 and sets_equal(read_stats(tiny), source)
    stream(adapter, tiny, 4, scale=0.2, seed=1)
    assert adapter.stats_gate.outside and adapter.norm_stats.commits == 2
    assert not sets_equal(read_stats(tiny), source)
    stream(adapter, tiny, 4, scale=1.0, seed=2)
    assert not adapter.stats_gate.outside and adapter.norm_stats.commits == 3
    assert sets_equal(read_stats(tiny), source)                 # natural footage: the source statistics again
    ungated = OnlineAdapter(create_encoder("dualstream_tiny").eval(), small_cfg(norm_stats_momentum=0.5,
                                                                               norm_stats_every=1,
                                                                               norm_stats_gated=False))
    assert ungated.stats_gate is None
    stream(ungated, ungated.model, 6, scale=1.0)
    assert ungated.norm_stats.commits == 5


def test_gate_opens_on_the_luma_mean_noise_and_contrast_unless_told_not_to(tiny):
    g = torch.Generator().manual_seed(0)
    base = torch.nn.functional.interpolate(torch.rand(1, 1, 6, 8, generator=g), size=(48, 64), mode="bilinear")
    base = ((base - base.mean()) / base.std()).expand(1, 3, 48, 64)
    flat = (0.45 + 0.06 * base).clamp(0, 1)                      # contrast 0.06: a low-contrast stream
    noisy = (0.45 + 0.2 * base + 0.1 * torch.randn(1, 3, 48, 64, generator=g)).clamp(0, 1)
    default = OnlineAdapter(tiny, small_cfg(norm_stats_momentum=0.5))
    assert default.cfg.norm_stats_gated and default.cfg.norm_stats_gate_contrast
    assert default.stats_gate(flat)                              # contrast 0.06, beyond 0.2 / 2
    mean_only = OnlineAdapter(create_encoder("dualstream_tiny").eval(),
                              small_cfg(norm_stats_momentum=0.5, norm_stats_gate_contrast=False))
    assert not mean_only.stats_gate(flat)                        # contrast alone: closed
    assert mean_only.stats_gate(noisy) and mean_only.stats_gate.noise > 8.0


def test_exposure_band_has_hysteresis():
    band = ExposureBand()                              # mean 0.45 +- 0.22, contrast 0.2 x/ 1.45
    assert not band.is_outside(0.60, 0.2) and band.is_outside(0.68, 0.2) and band.is_outside(0.45, 0.13)
    assert not band.is_outside(0.45, 0.28) and band.is_outside(0.45, 0.30)
    flat = torch.full((1, 3, 8, 8), 0.6)              # inside on the mean, contrast 0: outside
    assert band(flat) and band.last == pytest.approx((0.6, 0.0), abs=1e-6)
    g = torch.Generator().manual_seed(0)
    edge = 0.16 + 0.9 * torch.rand(1, 3, 64, 64, generator=g)   # mean 0.61: inside the band, not inside half of it
    assert band(edge) and band.outside                 # stays outside until well inside
    band.reset()
    assert not band(edge)
    with pytest.raises(ValueError, match="std_factor > 1"):
        ExposureBand(std_factor=1.0)


def test_exposure_band_noise_gate():
    """``noise_max``: an in-band frame is outside while its Immerkaer noise (grey levels) is above it."""
    ramp = torch.linspace(0.1, 0.8, 96).view(1, 1, 1, 96).expand(1, 3, 72, 96)     # mean 0.45, contrast 0.20
    noisy = (ramp + 0.08 * torch.randn(1, 3, 72, 96, generator=torch.Generator().manual_seed(0))).clamp(0, 1)
    band = ExposureBand(noise_max=8.0)
    assert not band(ramp) and band.noise < 1.0
    assert band(noisy) and 14.0 < band.noise < 17.0      # 0.08 x 255 x 0.75 (luma of independent channel noise)
    assert not ExposureBand()(noisy)                                  # no noise gate: in band
    assert not band(ramp)
