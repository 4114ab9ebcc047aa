"""The exposure path (``exposure_luma``): InputAffine + ExposureLoss on the tiny encoder. Identity at start, no update on
in-band footage, the gain rises on dimmed frames, and lr x100 is caught by the guard and rolled back exactly."""

from __future__ import annotations

import copy

import pytest
import torch

from perception.adaptation import AdaptationConfig, OnlineAdapter
from perception.adaptation.exposure import ExposureLoss
from perception.adaptation.input_adapter import attach_input_adapter
from perception.adaptation.params import sets_equal


def frames(scale: float = 1.0, offset: float = 0.0, n: int = 8) -> list[torch.Tensor]:
    """Smooth frames with luma mean about 0.45 and contrast about 0.2, then ``scale * p + offset``."""
    g = torch.Generator().manual_seed(0)
    base = torch.rand(1, 1, 6, 8, generator=g)
    out = []
    for i in range(n):
        x = torch.nn.functional.interpolate(base.roll(i, dims=-1), size=(48, 64), mode="bilinear")
        x = ((x - x.mean()) / x.std() * 0.2 + 0.45).clamp(0, 1).expand(1, 3, 48, 64)
        out.append((scale * x + offset).clamp(0, 1))
    return out


def adapter_on(model, shots: list[torch.Tensor], **kw) -> OnlineAdapter:
    # drift_max is calibrated on the shipped checkpoint; the random tiny model's features swing further for the
    # same input gain, so here only the exposure signal (and collapse) guard
    cfg = dict(enabled=True, buffer_size=8, min_frames=4, train_width=64, train_height=48, gaps=(1, 2),
               max_updates_per_s=0.0, compute_share=1.0, drift_max=float("inf"), exposure_luma=True,
               norm_stats_momentum=0.0)
    cfg.update(kw)
    adapter = OnlineAdapter(model, AdaptationConfig(**cfg))
    for x in shots:
        adapter.after_frame(x)
    return adapter


def test_input_adapter_starts_as_the_identity_and_survives_a_deep_copy(tiny):
    x = frames()[0]
    with torch.no_grad():
        before = tiny(x).dense
        affine = attach_input_adapter(tiny)
        assert affine is attach_input_adapter(tiny) and affine.is_identity()
        assert torch.equal(tiny(x).dense, before)
        twin = copy.deepcopy(tiny)
        twin.input_adapter.log_gain.fill_(1.0)           # only the copy changes
        assert torch.equal(tiny(x).dense, before) and not torch.allclose(twin(x).dense, before)
        # the pixel map and the normalised-space map agree
        p = torch.rand(1, 3, 8, 8)
        mean, std = tiny.mean, tiny.std
        assert torch.allclose((twin.input_adapter.pixel(p) - mean) / std, twin.input_adapter((p - mean) / std),
                              atol=1e-5)


def test_exposure_loss_is_zero_in_band_and_positive_for_dim_or_flat_frames(tiny):
    attach_input_adapter(tiny)
    loss = ExposureLoss()
    assert float(loss(tiny, torch.cat(frames()))[0].detach()) == 0.0
    dim, (mean, _, _) = loss(tiny, torch.cat(frames(scale=0.2)))
    flat, (_, contrast, _) = loss(tiny, torch.cat(frames(scale=0.3, offset=0.35)))
    assert float(dim.detach()) > 0.3 and mean < 0.12
    assert float(flat.detach()) > 0.3 and contrast < 0.07


def test_in_band_stream_is_served_by_the_source_weights_exactly(tiny):
    adapter = adapter_on(tiny, frames())
    for _ in range(3):
        result = adapter.step()
        assert result is not None and result.parts["exposure"] == 0.0
        assert result.action == "idle" and result.version is None   # no steps, no guard forwards, nothing published
    assert adapter.updates == 3 and adapter.versions.version == 0
    adapter.before_frame()
    assert sets_equal(adapter.serving, adapter.source)


def test_an_update_is_not_idle_while_adam_still_carries_momentum(tiny):
    adapter = adapter_on(tiny, frames(scale=0.2))
    assert adapter.step().action != "idle"                    # dim: gradients
    for frame in frames():                                     # back in band: zero gradients, but moments remain
        adapter.after_frame(frame)
    adapter.buffer = type(adapter.buffer)(adapter.cfg.buffer_size, adapter.buffer.size)
    for frame in frames():
        adapter.after_frame(frame)
    assert adapter.step().action != "idle"


def test_dim_stream_raises_the_gain_and_the_exposure_objective_falls(tiny):
    adapter = adapter_on(tiny, frames(scale=0.2))
    first = adapter.step()
    for _ in range(4):
        last = adapter.step()
    assert last.action in ("none", "snapshot") and adapter.guard.trips == 0
    assert last.parts["exposure"] < 0.5 * first.parts["exposure"]
    adapter.before_frame()
    assert float(tiny.input_adapter.log_gain) > 0.5          # served: the inference model's own adapter moved


@pytest.mark.parametrize("factor", [100.0])
def test_lr_x100_is_caught_and_rolled_back_exactly(tiny, factor):
    adapter = adapter_on(tiny, frames(scale=0.2), lr=AdaptationConfig().lr * factor)
    snapshot = {k: v.clone() for k, v in adapter.snapshot.items()}
    result = adapter.step()
    assert result.action in ("rollback", "fallback") and adapter.guard.trips == 1
    assert any("exposure objective worsened" in r for r in result.reasons)
    assert sets_equal(adapter.student, snapshot)               # the worker is back at the snapshot, bit for bit
    adapter.before_frame()
    assert sets_equal(adapter.serving, snapshot)


def test_identity_adapter_is_skipped_when_serving_and_applied_when_training(tiny):
    affine = attach_input_adapter(tiny)
    x = torch.rand(1, 3, 48, 64)
    calls = []
    affine.register_forward_hook(lambda *a: calls.append(1))
    with torch.inference_mode():
        served = tiny.encode(x, None)[0].dense
    assert calls == []                                       # identity, no gradient: not run
    loss = tiny.encode(x, None)[0].dense.float().pow(2).mean()
    loss.backward()
    assert len(calls) == 2 and affine.log_gain.grad is not None and affine.log_gain.grad.abs().sum() > 0
    with torch.no_grad():
        affine.log_gain.fill_(0.3)
    with torch.inference_mode():
        moved = tiny.encode(x, None)[0].dense
    assert len(calls) == 4 and not torch.allclose(served, moved)   # off the identity it is applied again


def test_luma_hinges_start_only_past_the_trigger_band_then_pull_into_the_narrow_band(tiny):
    affine = attach_input_adapter(tiny)
    loss = ExposureLoss(std=0.2, std_factor=1.45, trigger_factor=2.0)
    # contrast 0.13: outside the narrow band (0.2 / 1.45 = 0.138), inside the trigger band (0.1): natural footage
    low = torch.cat(frames(scale=0.65, offset=0.16))
    value, (_, contrast, _) = loss(tiny, low)
    assert 0.1 < contrast < 0.138 and float(value) == 0.0 and not loss.triggered(affine, low)
    adapter = adapter_on(tiny, frames(scale=0.65, offset=0.16), exposure_trigger_factor=2.0)
    assert adapter.step().action == "idle"                    # the stream is served as the source model
    # a shifted clip (contrast 0.06) triggers, and so does any clip once the affine has moved
    flat = torch.cat(frames(scale=0.3, offset=0.3))
    assert loss.triggered(affine, flat) and float(loss(tiny, flat)[0]) > 0
    with torch.no_grad():
        affine.log_gain.fill_(0.05)
    assert loss.triggered(affine, low) and float(loss(tiny, low)[0]) > 0
    with pytest.raises(ValueError, match="trigger_factor"):
        ExposureLoss(std_factor=1.45, trigger_factor=1.2)
