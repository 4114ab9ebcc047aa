"""``dualstream eval adapt`` on short slices of the real data: the JSON's structure, scores in [0, 1], guard trips of
the ``unstable`` method, fps on and off; and the shifts as pure functions."""

from __future__ import annotations

import json

import numpy as np
import pytest

from perception.cli import main
from perception.eval.adapt import METHODS
from perception.eval.shifts import SHIFTS, apply_shift, parse_shifts

FAST = ["--encoder", "dualstream_tiny", "--update-every", "1", "--fps-frames", "4", "--fps-seconds", "0.5",
        "--threads", "1", "--set", "min_frames=3", "--set", "buffer_size=8", "--set", "train_width=64",
        "--set", "train_height=48", "--set", "walk_grid=4", "--set", "lr=0.01",   # unstable: lr 1.0
        "--set", "exposure_luma=true"]   # the luma affine learns on these short slices: something for lr x100 to break


def check_report(path, shifts: list[str]) -> dict:
    report = json.loads(path.read_text())
    assert list(report["shifts"]) == shifts
    for shift in shifts:
        assert set(report["shifts"][shift]) == set(METHODS)
        assert all(0.0 <= v <= 1.0 for v in report["shifts"][shift].values()), report["shifts"][shift]
    assert set(report["guard"]) == set(METHODS)
    assert report["guard"]["frozen"]["rollbacks"] == 0 and report["guard"]["norm_stats"]["updates"] == 0
    assert report["guard"]["adapted"]["updates"] > 0
    unstable = report["guard"]["unstable"]
    assert unstable["rollbacks"] + unstable["trips"] > 0, unstable
    assert report["fps"]["adaptation_on"] > 0 and report["fps"]["adaptation_off"] > 0
    summary = report["summary"]
    assert summary["unstable_caught"] is True and isinstance(summary["beats_norm_stats"], bool)
    return report


def test_propagate_slice(shared_data, tmp_path, capsys):
    out = tmp_path / "adapt.json"
    code = main(["eval", "adapt", "--task", "propagate", "--davis", str(shared_data / "davis2016"),
                 "--seqs", "car-roundabout", "--max-frames", "6", "--scale", "0.25", "--shifts", "none,fog",
                 "--json", str(out), *FAST])
    assert code == 0
    report = check_report(out, ["none", "fog"])
    assert report["task"] == "propagate" and report["metric"] == "J&F"
    assert report["encoder"]["readout"] == "dense"          # a random encoder declares no readout
    assert report["fps"]["rounds"] == 3
    assert report["details"]["fog"]["frozen"]["car-roundabout"]["frames"] == 6
    assert "[eval adapt]" in capsys.readouterr().err                      # progress lines


def test_detect_slice(shared_data, tmp_path):
    """The AP50 path on the 6 frames it needs (the few-shot fit and the full-size detector dominate the cost, so
    only two methods here; the propagate slice checks all five)."""
    out = tmp_path / "adapt.json"
    code = main(["eval", "adapt", "--task", "detect", "--video", str(shared_data / "videos" / "vtest.avi"),
                 "--gt", str(shared_data / "mot15" / "PETS09-S2L1" / "gt" / "gt.txt"), "--max-frames", "6",
                 "--encoder-scale", "0.25", "--shifts", "lowlight", "--methods", "frozen,unstable", "--json", str(out),
                 "--warmup-frames", "3", *FAST])
    assert code == 0
    report = json.loads(out.read_text())
    assert report["metric"] == "AP50" and set(report["shifts"]["lowlight"]) == {"frozen", "unstable"}
    assert all(0.0 <= v <= 1.0 for v in report["shifts"]["lowlight"].values())
    assert report["guard"]["unstable"]["rollbacks"] + report["guard"]["unstable"]["trips"] > 0
    assert report["summary"] is None and report["fps"]["ratio"] > 0


def test_unknown_shift_is_a_user_error(capsys):
    assert main(["eval", "adapt", "--task", "detect", "--shifts", "rain"]) == 2
    assert "rain" in capsys.readouterr().err
    with pytest.raises(ValueError, match="known: none, lowlight"):
        parse_shifts("none,snow")


def test_shifts_are_pure_and_keep_the_geometry():
    rng = np.random.default_rng(0)
    frame = rng.integers(0, 256, (48, 64, 3), dtype=np.uint8)
    before = frame.copy()
    for name in SHIFTS:
        a, b = apply_shift(name, frame, 7), apply_shift(name, frame, 7)
        assert a.shape == frame.shape and a.dtype == np.uint8 and np.array_equal(a, b), name
        assert np.array_equal(frame, before), name                        # the input is never written
    assert np.array_equal(apply_shift("none", frame), frame)
    assert apply_shift("lowlight", frame).mean() < 0.3 * frame.mean()
    assert apply_shift("lowcontrast", frame).std() < 0.35 * frame.std()
    assert not np.array_equal(apply_shift("noise", frame, 1), apply_shift("noise", frame, 2))


def test_warm_up_runs_the_detector_and_keeps_its_background_not_its_tracks():
    """The benchmark's warm-up streams frames through the encoder and the detector; afterwards the encoder state and
    the tracks are gone, while the detector's background and (adaptive methods) its calibration have seen them."""
    from perception.config import DetectorConfig  # noqa: PLC0415
    from perception.detection.fewshot_detector import FewShotDetector  # noqa: PLC0415
    from perception.detection.fewshot_fit import fit_head  # noqa: PLC0415
    from perception.eval.adapt import AdaptSettings, StreamModel  # noqa: PLC0415
    from perception.eval.adapt_tasks import warm_up  # noqa: PLC0415
    from perception.io.synthetic import SyntheticScene  # noqa: PLC0415
    from perception.models import create_encoder  # noqa: PLC0415

    scene = list(SyntheticScene(width=128, height=96, num_frames=8, seed=3, num_objects=2, camera_motion=False,
                                min_size=16, max_size=28, max_speed=2.0))
    head = fit_head([f.image for f in scene[:4]], [f.boxes for f in scene[:4]], None, None, {"name": None}, "thing")
    stream = StreamModel(create_encoder("dualstream_tiny").eval(), "adapted", AdaptSettings(bf16=False))
    detector = FewShotDetector(DetectorConfig(), head, min_score=0.02, calibrate=True)
    dark = [apply_shift("lowlight", f.image, i) for i, f in enumerate(scene)]
    warm_up(stream, dark, 6, detector=detector)
    assert stream.frames == 6 and stream.state is None
    assert detector.foreground.primed and detector.calibrator.frames == 6 and detector.calibrator.tone
    assert detector.tracker.tracks == [] and detector.static is not None


def test_adaptive_methods_calibrate_until_their_guard_falls_back():
    """``sync_calibration``: an adaptive method's detector calibrates its frames; once the guard has fallen back to
    the source model (a learning rate of 5 trips it twice) it serves frames as ``frozen`` (no calibration); a reset
    of the adapter turns it back on."""
    from perception.adaptation import AdaptationConfig  # noqa: PLC0415
    from perception.config import DetectorConfig  # noqa: PLC0415
    from perception.detection.fewshot_detector import FewShotDetector  # noqa: PLC0415
    from perception.detection.fewshot_fit import fit_head  # noqa: PLC0415
    from perception.eval.adapt import AdaptSettings, StreamModel, to_tensor  # noqa: PLC0415
    from perception.eval.adapt_tasks import sync_calibration, warm_up  # noqa: PLC0415
    from perception.io.synthetic import SyntheticScene  # noqa: PLC0415
    from perception.models import create_encoder  # noqa: PLC0415

    scene = list(SyntheticScene(width=128, height=96, num_frames=8, seed=3, num_objects=2, camera_motion=False,
                                min_size=16, max_size=28, max_speed=2.0))
    head = fit_head([f.image for f in scene[:4]], [f.boxes for f in scene[:4]], None, None, {"name": None}, "thing")
    cfg = AdaptationConfig(enabled=True, buffer_size=8, min_frames=4, train_width=64, train_height=48, gaps=(1, 2),
                           max_updates_per_s=0.0, compute_share=1.0, params="norm+adapters", input_adapter=False,
                           lr=5.0, patch_weight=1.0, anchor_weight=1.0, exposure_weight=0.0, steps_per_update=1,
                           drift_max=0.35, max_trips=2)
    stream = StreamModel(create_encoder("dualstream_tiny").eval(), "adapted",
                         AdaptSettings(cfg=cfg, update_every=1, bf16=False))
    detector = FewShotDetector(DetectorConfig(), head, min_score=0.02, calibrate=True)
    dark = [apply_shift("lowlight", f.image, i) for i, f in enumerate(scene)]
    warm_up(stream, dark, 3, detector=detector)
    assert not stream.serving_source and detector.calibrator is not None and detector.calibrator.tone
    warm_up(stream, dark, 8, detector=detector)
    assert stream.adapter.guard.status == "fallback_source" and stream.guard_summary()["trips"] == 2
    assert stream.serving_source and detector.calibrator is None
    stream.adapter.reset()
    stream.encode(to_tensor(dark[0]))
    sync_calibration(stream, detector)
    assert not stream.serving_source and detector.calibrator is not None
    frozen = StreamModel(create_encoder("dualstream_tiny").eval(), "frozen", AdaptSettings(bf16=False))
    plain = FewShotDetector(DetectorConfig(), head, min_score=0.02)
    sync_calibration(frozen, plain)
    assert not frozen.serving_source and plain.calibrator is None


def test_adaptive_features_read_the_requested_map():
    import torch

    from perception.eval.adapt import AdaptSettings, StreamModel
    from perception.eval.adapt_tasks import AdaptiveFeatures
    from perception.eval.features import l2_normalise_cells
    from perception.models import create_encoder

    torch.manual_seed(0)
    tiny = create_encoder("dualstream_tiny").eval()
    frame = (np.random.default_rng(0).random((48, 64, 3)) * 255).astype(np.uint8)
    maps = {}
    for readout in ("dense", "local"):
        stream = StreamModel(tiny, "frozen", AdaptSettings(bf16=False))
        maps[readout] = AdaptiveFeatures(stream, "none", lambda line: None, readout)(frame)
    x = torch.from_numpy(frame).permute(2, 0, 1)[None].float() / 255.0
    with torch.inference_mode():
        output, _ = tiny.encode(x, None)
    assert torch.allclose(maps["local"], l2_normalise_cells(output.local[0].float()), atol=1e-5)
    assert torch.allclose(maps["dense"], l2_normalise_cells(output.dense[0].float()), atol=1e-5)
    with pytest.raises(ValueError, match="readout"):
        AdaptiveFeatures(StreamModel(tiny, "frozen", AdaptSettings()), "none", print, "fused")
