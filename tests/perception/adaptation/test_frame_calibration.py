"""``FrameCalibrator`` on real vtest.avi frames under the benchmark's shifts, its parts by hand, the few-shot
detector with calibration on a synthetic static scene, and the perceiver turning it on for the adapted stream (and
off after the adapter's fallback to the source model)."""

from __future__ import annotations

import math
from pathlib import Path

import cv2
import numpy as np
import pytest

from perception.adaptation import attach_online_adapter
from perception.adaptation.frame_calibration import (FrameCalibrator, channel_histograms, noise_sigma,
                                                     specification_lut)
from perception.config import Config, DetectorConfig
from perception.detection.fewshot import save_head
from perception.detection.fewshot_detector import FewShotDetector
from perception.detection.fewshot_fit import fit_head
from perception.eval.shifts import apply_shift
from perception.io.frame import Frame
from perception.io.synthetic import SyntheticScene
from perception.runtime.perceiver import Perceiver

from .conftest import small_cfg


@pytest.fixture(scope="module")
def vtest(shared_data) -> list[np.ndarray]:
    from perception.eval.detect import read_video  # noqa: PLC0415

    frames = list(read_video(shared_data / "videos" / "vtest.avi", 8))
    return [cv2.resize(f, (384, 288), interpolation=cv2.INTER_AREA) for f in frames]


def _mean_abs(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.abs(a.astype(np.int16) - b.astype(np.int16)).mean())


def test_noise_sigma_and_specification_by_hand():
    rng = np.random.default_rng(0)
    flat = np.full((120, 160, 3), 128, np.float32)
    noisy = np.clip(flat + rng.normal(0, 10, flat.shape[:2])[..., None], 0, 255).astype(np.uint8)  # grey noise
    assert noise_sigma(noisy) == pytest.approx(10.0, rel=0.1)
    assert noise_sigma(flat.astype(np.uint8)) == 0.0
    image = rng.integers(0, 256, (64, 64, 3), dtype=np.uint8)
    hist = channel_histograms(image)
    assert hist.shape == (3, 256) and np.allclose(hist.sum(axis=1), 1.0)
    lut = specification_lut(hist, hist)
    low, high = int(image.min()), int(image.max())
    assert np.abs(lut[low:high + 1].astype(int) - np.arange(low, high + 1)[:, None]).max() <= 1  # the identity
    dark = (image // 4).astype(np.uint8)                                 # a gain of 1/4 ...
    undone = cv2.LUT(dark, specification_lut(channel_histograms(dark), hist).reshape(1, 256, 3))
    assert _mean_abs(undone, image) < 2.5 and _mean_abs(dark, image) > 80   # ... undone to about a level


def test_clean_and_blurred_frames_pass_untouched(vtest):
    for shift in ("none", "blur"):
        calibrator = FrameCalibrator(vtest[0])
        for i, frame in enumerate(vtest):
            shifted = apply_shift(shift, frame, i)
            assert calibrator(shifted) is shifted, (shift, calibrator.state())
        assert not calibrator.active


@pytest.mark.parametrize("shift", ["lowlight", "lowcontrast", "fog"])
def test_global_tone_shifts_are_undone(vtest, shift):
    calibrator = FrameCalibrator(vtest[0])
    for i, frame in enumerate(vtest):
        out = calibrator(apply_shift(shift, frame, i))
    raw = _mean_abs(apply_shift(shift, vtest[-1], len(vtest) - 1), vtest[-1])
    assert calibrator.tone and calibrator.sigma == 0.0
    assert raw > 30 and _mean_abs(out, vtest[-1]) < 3.0, (raw, _mean_abs(out, vtest[-1]))


def test_sensor_noise_is_smoothed_and_the_correction_switches_off_again(vtest):
    calibrator = FrameCalibrator(vtest[0])
    for i, frame in enumerate(vtest):
        out = calibrator(apply_shift("noise", frame, i))
    assert not calibrator.tone and 0.9 <= calibrator.sigma <= 1.6, calibrator.state()   # excess ~17 levels
    assert noise_sigma(out) < 2.0 < 15.0 < noise_sigma(apply_shift("noise", vtest[-1], 7))
    for frame in vtest + vtest:                                    # the camera is clean again: momentum 0.2
        last = calibrator(frame)
    assert calibrator.sigma == 0.0 and last is frame


def _scene():
    return list(SyntheticScene(width=320, height=240, num_frames=12, seed=3, num_objects=4, camera_motion=False,
                               min_size=24, max_size=48, max_speed=3.0))


def _dense(image: np.ndarray) -> np.ndarray:
    h, w = image.shape[0] // 8, image.shape[1] // 8
    blocks = image[: h * 8, : w * 8].reshape(h, 8, w, 8, 3).mean(axis=(1, 3)) / 255.0
    return np.tanh(blocks @ np.random.default_rng(0).normal(size=(3, 8))).transpose(2, 0, 1).astype(np.float32)


def _recall(detector: FewShotDetector, frames, shift: str, dense_shift: str = "none") -> float:
    found = total = 0
    for i, f in enumerate(frames):
        image = apply_shift(shift, f.image, i)
        dets = detector.detect(image, _dense(apply_shift(dense_shift, f.image, i)))
        total += len(f.boxes)
        for box in f.boxes:
            x, y, w, h = box
            found += any(_iou((x, y, w, h), b) >= 0.5 for b in dets.boxes)
    return found / max(total, 1)


def _iou(a, b) -> float:
    ax1, ay1, bx1, by1 = a[0] + a[2], a[1] + a[3], b[0] + b[2], b[1] + b[3]
    iw, ih = max(0.0, min(ax1, bx1) - max(a[0], b[0])), max(0.0, min(ay1, by1) - max(a[1], b[1]))
    inter = iw * ih
    return inter / (a[2] * a[3] + b[2] * b[3] - inter)


@pytest.fixture(scope="module")
def scene_head():
    frames = _scene()
    fit = frames[:5]
    head = fit_head([f.image for f in fit], [f.boxes for f in fit], None, [_dense(f.image) for f in fit],
                    {"name": "test-projection"}, "thing")
    return frames, head


@pytest.fixture(scope="module")
def colour_head():
    """A head on colour cells only (no encoder features): any encoder can feed it."""
    fit = _scene()[:5]
    return fit_head([f.image for f in fit], [f.boxes for f in fit], None, None, {"name": None}, "thing")


def test_fewshot_detector_with_calibration_finds_objects_in_the_dark(scene_head):
    frames, head = scene_head
    cfg = DetectorConfig(method="fewshot")
    plain, calibrated = FewShotDetector(cfg, head), FewShotDetector(cfg, head, calibrate=True)
    dark_plain, dark_calibrated = _recall(plain, frames, "lowlight"), _recall(calibrated, frames, "lowlight")
    assert dark_calibrated >= 0.7 and dark_calibrated >= dark_plain + 0.3, (dark_plain, dark_calibrated)
    # on the unchanged camera calibration changes nothing: the same boxes and scores
    a, b = FewShotDetector(cfg, head), FewShotDetector(cfg, head, calibrate=True)
    for f in frames[:6]:
        da, db = a.detect(f.image, _dense(f.image)), b.detect(f.image, _dense(f.image))
        np.testing.assert_array_equal(da.boxes, db.boxes)
        np.testing.assert_array_equal(da.scores, db.scores)
    assert not b.calibrator.active
    assert b.set_calibration(False) is False and b.calibrator is None


def test_perceiver_calibrates_the_adapted_streams_detector(colour_head, tmp_path: Path):
    save_head(colour_head, tmp_path / "head")
    cfg = Config()
    cfg.encoder.name, cfg.encoder.input_width, cfg.encoder.input_height = "dualstream_tiny", 64, 48
    cfg.runtime.device, cfg.runtime.precision, cfg.runtime.threads, cfg.runtime.warmup_frames = "cpu", "fp32", 1, 0
    cfg.runtime.publish_pca = cfg.runtime.publish_debug = False
    cfg.detector.method, cfg.detector.fewshot_head = "fewshot", str(tmp_path / "head")
    perceiver = Perceiver(cfg)
    frame = Frame(image=np.zeros((48, 64, 3), np.uint8), stamp_ns=0, seq=0)
    perceiver.process(frame)
    state = perceiver._streams
    assert state["default"].detector.calibrator is None                   # no adapter: frames as given
    assert perceiver.frame_calibration() == "off" and perceiver.frame_calibration("none yet") == "n/a"
    attach_online_adapter(perceiver, small_cfg(), start=False)
    perceiver.process(frame, stream="other")
    assert state["default"].detector.calibrator is not None               # the adapted stream
    assert state["other"].detector.calibrator is None
    assert perceiver.frame_calibration() == "idle" and perceiver.frame_calibration("other") == "off"
    perceiver.process(frame)                                               # all black: far below the reference
    assert "tone" in perceiver.frame_calibration()
    perceiver.update_detector(cfg.detector)
    assert state["default"].detector.calibrator is not None and state["other"].detector.calibrator is None
    perceiver.attach_adapter(None)
    assert state["default"].detector.calibrator is None
    assert math.isfinite(FrameCalibrator(np.full((8, 8, 3), 90, np.uint8)).reference_mean)


def _fewshot_perceiver(head_dir: Path) -> Perceiver:
    cfg = Config()
    cfg.encoder.name, cfg.encoder.input_width, cfg.encoder.input_height = "dualstream_tiny", 160, 120
    cfg.runtime.device, cfg.runtime.precision, cfg.runtime.threads, cfg.runtime.warmup_frames = "cpu", "fp32", 1, 0
    cfg.runtime.publish_pca = cfg.runtime.publish_debug = False
    cfg.detector.method, cfg.detector.fewshot_head = "fewshot", str(head_dir)
    return Perceiver(cfg)


def test_after_a_fallback_the_stream_is_served_exactly_as_frozen(colour_head, tmp_path: Path):
    """The guard falls back (a learning rate of 5 trips it twice): from the frame boundary that applies the source
    set, the detector's calibration is off and detections (and features) equal a frozen perceiver's on the same
    foggy frames; before the fallback calibration changed them; an adapter reset turns it back on."""
    save_head(colour_head, tmp_path / "head")
    adapted, frozen = _fewshot_perceiver(tmp_path / "head"), _fewshot_perceiver(tmp_path / "head")
    adapter, _ = attach_online_adapter(adapted, small_cfg(lr=5.0, max_trips=2, trip_window_s=600.0), stream=None,
                                       start=False)
    foggy = [Frame(image=apply_shift("fog", f.image, i), stamp_ns=i, seq=i) for i, f in enumerate(_scene())]

    def run(perceiver: Perceiver, stream: str):
        return [perceiver.process(f, stream=stream) for f in foggy]

    before, plain = run(adapted, "before"), run(frozen, "before")
    assert adapted._streams["before"].detector.calibrator.tone               # fog: the tone mapping is applied
    assert any(len(a.detections) != len(b.detections) or not np.array_equal(a.detections.scores, b.detections.scores)
               for a, b in zip(before, plain))                               # calibration changed the detections
    assert [adapter.step().action for _ in range(2)] == ["rollback", "fallback"]
    assert adapter.guard.status == "fallback_source" and not adapter.serving_source   # not applied yet
    adapted.process(foggy[0], stream="before")                                # the frame boundary applies it
    assert adapter.serving_source and adapted._streams["before"].detector.calibrator is None
    after, reference = run(adapted, "after"), run(frozen, "after")
    assert adapted._streams["after"].detector.calibrator is None
    for a, b in zip(after, reference):
        np.testing.assert_array_equal(a.detections.boxes, b.detections.boxes)
        np.testing.assert_array_equal(a.detections.scores, b.detections.scores)
        np.testing.assert_array_equal(a.features, b.features)
    assert sum(len(r.detections) for r in after) >= 100 > sum(len(r.detections) for r in before) + 40
    assert "reset" in adapter.reset()
    adapted.process(foggy[1], stream="after")
    assert not adapter.serving_source and adapted._streams["after"].detector.calibrator is not None
