"""The noise half of the exposure objective: InputAffine's learned smoothing, trained on crops at the served
resolution. Clean frames leave it at the identity, noisy frames raise it until the noise is below the bar, the gain
and bias are left alone, and lr x100 overshoots and is caught by the guard."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from perception.adaptation import AdaptationConfig, OnlineAdapter
from perception.adaptation.buffer import FrameBuffer
from perception.adaptation.exposure import ExposureLoss, noise_level
from perception.adaptation.input_adapter import attach_input_adapter
from perception.adaptation.params import sets_equal
from perception.monitor.image_quality import noise_sigma


def frames(noise: float = 0.0, n: int = 8, size: tuple[int, int] = (48, 64)) -> list[torch.Tensor]:
    """Smooth in-band frames (luma mean about 0.45, contrast about 0.2) plus N(0, noise) per pixel and channel."""
    g = torch.Generator().manual_seed(0)
    base = torch.rand(1, 1, 6, 8, generator=g)
    out = []
    for i in range(n):
        x = torch.nn.functional.interpolate(base.roll(i, dims=-1), size=size, mode="bilinear")
        x = ((x - x.mean()) / x.std() * 0.2 + 0.45).expand(1, 3, *size)
        out.append((x + noise * torch.randn(1, 3, *size, generator=g)).clamp(0, 1))
    return out


def adapter_on(model, shots: list[torch.Tensor], **kw) -> OnlineAdapter:
    cfg = dict(enabled=True, buffer_size=8, min_frames=4, train_width=32, train_height=24, gaps=(1, 2),
               max_updates_per_s=0.0, compute_share=1.0, drift_max=float("inf"))
    cfg.update(kw)
    adapter = OnlineAdapter(model, AdaptationConfig(**cfg))
    for x in shots:
        adapter.after_frame(x)
    return adapter


def test_noise_level_is_the_monitors_estimate_in_grey_levels():
    rng = np.random.default_rng(0)
    image = np.clip(0.5 + 0.08 * rng.standard_normal((96, 128, 3)), 0, 1).astype(np.float32)
    ours = float(noise_level(torch.from_numpy(image).permute(2, 0, 1)[None]))
    assert ours == pytest.approx(255.0 * noise_sigma(image), rel=1e-4)
    # the luma of independent per-channel noise: 0.08 * 255 * |(0.2126, 0.7152, 0.0722)| = 15.3 grey levels
    assert 13.0 < ours < 16.0


def test_smoothing_is_a_blend_with_a_gaussian_blur_and_skipped_at_zero(tiny):
    affine = attach_input_adapter(tiny)
    x = torch.rand(1, 3, 20, 24)
    flat = torch.full((1, 3, 20, 24), 0.3)
    assert torch.allclose(affine.blur(flat), flat, atol=1e-6)          # a constant image passes unchanged
    blurred = affine.blur(x)
    assert blurred.std() < 0.6 * x.std()                               # white noise loses most of its power
    with torch.no_grad():
        assert torch.equal(affine.smoothed(x), x)                      # smooth 0
        affine.smooth.fill_(1.0)
        assert torch.allclose(affine.smoothed(x), blurred, atol=1e-6)
        affine.smooth.fill_(0.5)
        assert torch.allclose(affine(x), 0.5 * (x + blurred), atol=1e-6)
        affine.smooth.zero_()
        affine.log_gain.fill_(0.2)                                     # the affine alone: no blur pass served
        calls = []
        handle = affine.register_forward_hook(lambda *a: calls.append(1))
        with torch.inference_mode():
            served = affine(x)
        handle.remove()
        gain = float(np.exp(0.2))
        expected = x * gain + ((gain - 1.0) * affine.mean + 0.0).view(1, -1, 1, 1) / affine.std.view(1, -1, 1, 1)
        assert calls == [1] and torch.allclose(served, expected, atol=1e-5)
    tiny_blur = affine.blur(torch.rand(1, 3, 3, 3))                   # the smallest sides still work
    assert tiny_blur.shape == (1, 3, 3, 3)


def test_buffer_keeps_centre_crops_at_the_served_resolution():
    buf = FrameBuffer(capacity=4, size=(12, 16), detail=(6, 8))
    big = torch.zeros(1, 3, 30, 40)
    big[..., 12:18, 16:24] = 1.0                                       # exactly the centre 6x8
    for _ in range(3):
        buf.push(big)
    clip, crops = buf.sample_clip(2, gaps=(1,), detail=True)
    assert clip.shape == (2, 3, 12, 16) and crops.shape == (2, 3, 6, 8)
    assert torch.equal(crops, torch.ones_like(crops))                  # not resized: the centre itself
    buf.push(torch.zeros(1, 3, 4, 5))                                  # a smaller frame: its whole self
    assert buf.ordered(details=True)[-1].shape == (3, 4, 5)
    _, mixed = buf.sample_clip(4, gaps=(1,), detail=True)
    assert mixed is None                                               # crops of two sizes are not stacked
    assert torch.is_tensor(buf.sample_clip(2, gaps=(1,)))              # without detail: the clip alone
    assert FrameBuffer(capacity=2, size=(4, 4)).ordered(details=True) == []


def test_noise_term_has_no_gradient_on_clean_frames_and_leaves_the_adapter_idle(tiny):
    adapter = adapter_on(tiny, frames(noise=0.0))
    result = adapter.step()
    assert result.action == "idle" and result.parts["noise"] < AdaptationConfig().exposure_noise_max
    assert adapter.versions.version == 0 and float(adapter.student["input_adapter.smooth"].detach()) == 0.0


def test_noisy_frames_raise_the_smoothing_until_the_noise_is_below_the_bar(tiny):
    noisy = frames(noise=0.1)
    raw = float(noise_level(torch.cat(noisy)))
    assert raw > 15.0
    adapter = adapter_on(tiny, noisy)
    first = adapter.step()                              # parts: after the update's optimizer steps
    assert first.action != "idle" and first.parts["noise"] < raw - 5.0
    for _ in range(5):
        last = adapter.step()
    assert adapter.guard.trips == 0 and last.action in ("none", "snapshot", "idle")
    assert last.parts["noise"] < AdaptationConfig().exposure_noise_max and last.parts["exposure"] == 0.0
    smooth = float(adapter.student["input_adapter.smooth"].detach())
    assert 0.5 < smooth < 1.5
    # the luma terms are flat for in-band frames and the noise term never reaches gain or bias
    assert float(adapter.student["input_adapter.log_gain"].detach().abs().max()) == 0.0
    assert float(adapter.student["input_adapter.bias"].detach().abs().max()) == 0.0
    adapter.before_frame()
    assert float(tiny.input_adapter.smooth) == pytest.approx(smooth)  # served: the inference model's copy moved
    with torch.inference_mode():
        served = tiny.input_adapter.smoothed(noisy[0])
    assert float(noise_level(served)) < 0.8 * float(noise_level(noisy[0]))


def test_noise_term_off_keeps_no_crops_and_no_gradient(tiny):
    adapter = adapter_on(tiny, frames(noise=0.1), exposure_noise_max=0.0)
    assert adapter.buffer.detail is None
    assert adapter.step().action == "idle"


def test_lr_x100_on_noisy_frames_overshoots_and_is_caught(tiny):
    adapter = adapter_on(tiny, frames(noise=0.1), lr=AdaptationConfig().lr * 100.0)
    snapshot = {k: v.clone() for k, v in adapter.snapshot.items()}
    result = adapter.step()
    assert result.action in ("rollback", "fallback") and adapter.guard.trips == 1
    assert any("exposure objective worsened" in r for r in result.reasons)
    assert sets_equal(adapter.student, snapshot)


def test_exposure_loss_reports_nan_noise_without_crops(tiny):
    attach_input_adapter(tiny)
    loss, (_, _, noise) = ExposureLoss(noise_max=6.0)(tiny, torch.cat(frames(noise=0.1)))
    assert noise != noise and float(loss) == 0.0                       # no crops: only the luma terms


def test_buffer_and_gate_take_the_uint8_image_or_the_float_frame_alike():
    from perception.adaptation.buffer import frame_image
    from perception.adaptation.exposure import ExposureBand

    rng = np.random.default_rng(0)
    image = (rng.random((60, 80, 3)) * 255).astype(np.uint8)
    tensor = torch.from_numpy(image).permute(2, 0, 1)[None].float() / 255.0
    assert np.array_equal(frame_image(tensor), image) and frame_image(image) is image
    a, b = FrameBuffer(4, (12, 16), detail=(6, 8)), FrameBuffer(4, (12, 16), detail=(6, 8))
    a.push(image)
    b.push(tensor)
    assert torch.equal(a.ordered()[0], b.ordered()[0]) and torch.equal(a.ordered(True)[0], b.ordered(True)[0])
    assert torch.equal(a.ordered(True)[0], torch.from_numpy(image[27:33, 36:44]).permute(2, 0, 1))
    band_a, band_b = ExposureBand(noise_max=8.0), ExposureBand(noise_max=8.0)
    assert band_a(image) == band_b(tensor) and band_a.last == band_b.last and band_a.noise == band_b.noise
    with pytest.raises(ValueError, match="uint8"):
        a.push(image.astype(np.float32))
    with pytest.raises(ValueError, match=r"\(1, 3, H, W\)"):
        a.push(torch.rand(2, 3, 8, 8))
