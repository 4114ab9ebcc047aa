"""Monitor levels on dark, low-contrast and normal images; drift/OOD scores against reference statistics."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from perception.config import ConfigError
from perception.monitor import (ERROR, OK, WARN, MonitorConfig, ReferenceStats, StreamMonitor, image_quality,
                                level_above, level_below, worst)


def textured(mean: float, amplitude: float, seed: int = 0, shape=(120, 160), noise: float = 0.0) -> np.ndarray:
    """A smooth random texture (a 15x20 random field, bilinearly upsampled) with the given mean and peak amplitude
    (fractions of 255), plus Gaussian pixel noise of ``noise``; RGB uint8."""
    rng = np.random.default_rng(seed)
    field = cv2.resize(rng.random((15, 20)).astype(np.float32) * 2 - 1, shape[::-1], interpolation=cv2.INTER_LINEAR)
    y = mean + amplitude * field / np.abs(field).max() + noise * rng.normal(size=shape)
    return np.repeat((np.clip(y, 0, 1) * 255).round().astype(np.uint8)[..., None], 3, axis=2)


@pytest.mark.parametrize("image, luminance_level, contrast_level", [
    (textured(0.45, 0.45), OK, OK),          # normal: luminance 0.45, RMS about 0.2
    (textured(0.10, 0.10), WARN, WARN),      # dim: luminance 0.10, RMS about 0.045
    (textured(0.02, 0.02), ERROR, ERROR),    # night without lights
    (textured(0.50, 0.03), OK, ERROR),       # fog / lens cover: bright but flat (RMS about 0.014)
    (textured(0.50, 0.09), OK, WARN),        # haze: RMS about 0.04
])
def test_image_levels(image, luminance_level, contrast_level):
    q = image_quality(image, MonitorConfig())
    expected_rms = float((image[..., 0] / 255.0).std())
    assert q.contrast == pytest.approx(expected_rms, abs=0.01)   # grey image: luma = the channel value
    assert q.luminance == pytest.approx(float((image[..., 0] / 255.0).mean()), abs=0.01)
    assert (q.luminance_level, q.contrast_level) == (luminance_level, contrast_level)
    assert q.noise < 0.01 and q.noise_level == OK               # smooth textures carry no noise
    assert q.level == worst(luminance_level, contrast_level)


@pytest.mark.parametrize("sigma, level", [(0.0, OK), (0.02, OK), (0.05, WARN), (0.1, ERROR)])
def test_noise_is_estimated_within_a_few_percent_and_levelled(sigma, level):
    image = textured(0.5, 0.3, seed=3, shape=(240, 320), noise=sigma)
    q = image_quality(image, MonitorConfig())
    assert q.noise == pytest.approx(sigma, abs=0.004 + 0.1 * sigma)   # uint8 rounding adds about 0.001
    assert q.noise_level == level and q.level == level


def test_luma_weights_follow_rec709():
    red = np.zeros((8, 8, 3), np.uint8)
    red[..., 0] = 255
    green = np.roll(red, 1, axis=2)
    assert image_quality(red, MonitorConfig()).luminance == pytest.approx(0.2126, abs=1e-4)
    assert image_quality(green, MonitorConfig()).luminance == pytest.approx(0.7152, abs=1e-4)


def test_level_helpers():
    assert [level_above(v, 2, 4) for v in (1.9, 2.0, 3.9, 4.0, float("nan"))] == [OK, WARN, WARN, ERROR, WARN]
    assert [level_below(v, 0.15, 0.05) for v in (0.2, 0.15, 0.05)] == [OK, WARN, ERROR]
    assert worst(OK, ERROR, WARN) == ERROR and worst() == OK
    with pytest.raises(ConfigError, match="monitor.ood"):
        MonitorConfig(ood_warn=5.0, ood_error=4.0)


def gaussian_stream(n: int, dim: int = 16, seed: int = 0, shift: float = 0.0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    scales = np.linspace(0.5, 2.0, dim)
    base = np.full(dim, 3.0)
    direction = np.where(np.arange(dim) % 2 == 0, 1.0, -1.0)      # a change of direction, not only of norm
    return base + shift * direction + rng.normal(size=(n, dim)) * scales


def test_reference_scores_are_at_most_one_for_most_frames_in_distribution_and_large_out_of_it():
    ref = ReferenceStats.fit(gaussian_stream(200), shrinkage=0.1)
    same = np.array([ref.ood_score(e) for e in gaussian_stream(400, seed=1)])
    assert 0.85 <= np.mean(same <= 1.0) <= 0.95            # the scale is the 0.9 quantile of held-out frames
    far = [ref.ood_score(e) for e in gaussian_stream(20, seed=2, shift=4.0)]
    assert min(far) > 2.0
    cos_same = np.array([ref.cosine_score(e) for e in gaussian_stream(400, seed=3)])
    assert 0.85 <= np.mean(cos_same <= 1.0) <= 0.95


def test_held_out_blocks_calibrate_a_slowly_moving_stream():
    """A random walk (a moving camera): interleaved folds would see only neighbours; held-out blocks see the walk
    move on, so frames just after the reference period still score about 1."""
    rng = np.random.default_rng(0)
    walk = np.cumsum(rng.normal(scale=0.3, size=(150, 16)), axis=0) + rng.normal(size=(150, 16))
    ref = ReferenceStats.fit(walk[:100], shrinkage=0.9)
    assert np.median([ref.ood_score(e) for e in walk[100:110]]) < 1.5


def test_reference_round_trips_through_a_file(tmp_path):
    ref = ReferenceStats.fit(gaussian_stream(50), shrinkage=0.2)
    path = ref.save(tmp_path / "ref.npz")
    loaded = ReferenceStats.load(path)
    e = gaussian_stream(1, seed=9)[0]
    assert loaded.ood_score(e) == pytest.approx(ref.ood_score(e)) and loaded.count == 50
    (tmp_path / "bad.npz").write_bytes(b"not a zip")
    with pytest.raises(ValueError, match="bad.npz"):
        ReferenceStats.load(tmp_path / "bad.npz")


def test_stream_monitor_collects_a_reference_then_flags_a_scene_change():
    cfg = MonitorConfig(reference_frames=40, reference_every=1, drift_ema=0.8)
    monitor = StreamMonitor(cfg)
    image = textured(0.45, 0.45)
    stream = gaussian_stream(40)
    for e in stream:
        report = monitor.update(image, e)
        assert report.level == OK and np.isnan(report.features.ood)
    assert monitor.features.reference is not None and monitor.features.reference.count == 40
    normal = [monitor.update(image, e) for e in gaussian_stream(30, seed=5)]
    assert normal[-1].features.drift_level == OK
    assert np.mean([r.features.ood for r in normal]) < 1.2
    changed = [monitor.update(textured(0.03, 0.02), e) for e in gaussian_stream(30, seed=6, shift=6.0)]
    last = changed[-1]
    assert last.features.ood_level == ERROR and last.features.drift_level in (WARN, ERROR)
    assert last.level == ERROR and last.image.luminance_level == ERROR
    values = last.values()
    assert values["monitor_level"] == ERROR and values["drift_score"] > cfg.drift_warn
    assert any(p.startswith("low light") for p in last.problems())


@pytest.mark.parametrize("shape", [(576, 768), (480, 640), (275, 641), (100, 120)])
def test_fast_image_statistics_equal_the_plain_numpy_formulas(shape):
    """The OpenCV paths of ``luma``, ``image_quality`` and ``noise_sigma`` (nearest-neighbour subsampling, channel
    transform, ``meanStdDev``, L1 norm) give the values of the textbook numpy expressions, for frame sizes that the
    subsampling step divides and ones it does not."""
    from perception.monitor.image_quality import LUMA_WEIGHTS, NOISE_CROP, luma, noise_sigma  # noqa: PLC0415

    rng = np.random.default_rng(3)
    image = rng.integers(0, 256, (*shape, 3), dtype=np.uint8)
    step = max(1, shape[1] // 160)
    expected = (image[::step, ::step].astype(np.float32) / 255.0) @ LUMA_WEIGHTS
    y = luma(image)
    assert y.shape == expected.shape and y.dtype == np.float32
    np.testing.assert_allclose(y, expected, atol=1e-6)
    q = image_quality(image, MonitorConfig())
    assert q.luminance == pytest.approx(float(expected.mean()), abs=1e-6)
    assert q.contrast == pytest.approx(float(expected.std()), abs=1e-6)
    ch, cw = min(shape[0], NOISE_CROP[0]), min(shape[1], NOISE_CROP[1])
    top, left = (shape[0] - ch) // 2, (shape[1] - cw) // 2
    grey = (image[top:top + ch, left:left + cw].astype(np.float32) / 255.0) @ LUMA_WEIGHTS
    kernel = np.array([[1, -2, 1], [-2, 4, -2], [1, -2, 1]], np.float32)
    response = sum(kernel[i, j] * grey[i:i + ch - 2, j:j + cw - 2] for i in range(3) for j in range(3))
    assert noise_sigma(image) == pytest.approx(float(np.sqrt(np.pi / 2) / 6 * np.abs(response).mean()), rel=1e-5)
    assert q.noise > 0.2  # uniform random pixels: very noisy


def test_mahalanobis_score_equals_the_quadratic_form():
    rng = np.random.default_rng(4)
    ref = ReferenceStats.fit(rng.normal(size=(40, 16)))
    e = rng.normal(size=16)
    d = e - ref.mean
    assert ref.ood_score(e) == pytest.approx(float(np.sqrt(d @ np.linalg.inv(ref.cov) @ d)) / ref.ood_scale, rel=1e-9)


@pytest.mark.parametrize("frames, dim, shrinkage", [(50, 384, 0.9), (12, 64, 0.2), (30, 16, 0.5), (10, 32, 0.0)])
def test_reference_fit_equals_the_dense_formulas(frames, dim, shrinkage):
    """The low-rank (Woodbury) fit gives the statistics of the textbook one: shrunk covariance, its inverse, and the
    0.9 quantiles of the held-out blocks' Mahalanobis and cosine distances computed with dense D x D inverses; with
    fewer frames than dimensions (the node's 50 frames of 384) and with as many, with and without shrinkage."""
    rng = np.random.default_rng(frames + dim)
    x = rng.normal(size=(frames, dim)) * np.linspace(0.5, 2.0, dim) + 1.0
    if shrinkage == 0.0:
        x = rng.normal(size=(4 * dim, dim))  # no shrinkage: only a full-rank covariance is invertible

    def dense(rows):
        mean = rows.mean(axis=0)
        cov = np.cov(rows, rowvar=False)
        cov = (1 - shrinkage) * cov + shrinkage * (np.trace(cov) / dim + 1e-8) * np.eye(dim)
        return mean, cov

    ood, cos = [], []
    for block in np.array_split(np.arange(len(x)), max(2, min(5, len(x) // 2))):
        rest = np.setdiff1d(np.arange(len(x)), block)
        mean, cov = dense(x[rest])
        d = x[block] - mean
        ood += list(np.sqrt(np.einsum("nd,de,ne->n", d, np.linalg.inv(cov), d)))
        cos += list(1 - x[block] @ mean / (np.linalg.norm(x[block], axis=1) * np.linalg.norm(mean)))
    mean, cov = dense(x)
    ref = ReferenceStats.fit(x, shrinkage=shrinkage)
    np.testing.assert_allclose(ref.mean, mean, rtol=1e-12)
    np.testing.assert_allclose(ref.cov, cov, rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(ref.precision, np.linalg.inv(cov), rtol=1e-6, atol=1e-9)
    assert ref.ood_scale == pytest.approx(np.quantile(ood, 0.9), rel=1e-6)
    assert ref.cos_scale == pytest.approx(np.quantile(cos, 0.9), rel=1e-6)
