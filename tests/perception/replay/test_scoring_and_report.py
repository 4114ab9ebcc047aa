"""Bag from video (raw, compressed, ground truth round trip), replay scoring against eval detect's functions, and the
report's charts."""

from __future__ import annotations

import xml.etree.ElementTree as ET

import numpy as np
import pytest

from perception.config import DetectorConfig
from perception.eval.detect import MethodRun, evaluate, read_video, scored_frames
from perception.eval.mot import load_mot_gt
from perception.io.bag import BagSource
from perception.replay.bag_access import inspect_bag, read_messages
from perception.replay.from_video import VideoBagSpec, bag_from_video
from perception.replay.ground_truth import truth_from_cdr
from perception.replay.report_html import RunView, render
from perception.replay.scoring import Output, Published, score_replay
from perception.replay.svg_plots import histogram, line_chart, nice_ticks


@pytest.mark.parametrize("storage", ["mcap", "sqlite3"])
def test_bag_from_video_carries_the_decoded_pixels_and_the_ground_truth(short_video, tmp_path, storage):
    gt = short_video.parent / "gt.txt"
    out = tmp_path / "bag"
    result = bag_from_video(short_video, out, gt, VideoBagSpec(storage=storage, transport="both"))
    assert result["frames"] == 12 and result["fps"] == pytest.approx(10.0)
    info = inspect_bag(out)
    assert {t: i.count for t, i in info.topics.items()} == {
        "/camera/image_raw": 12, "/camera/image_raw/compressed": 12, "/camera/camera_info": 12,
        "/camera/ground_truth": 12}
    frames = list(BagSource(out, topic="/camera/image_raw"))
    assert all(np.array_equal(f.image, v) for f, v in zip(frames, read_video(short_video)))
    assert frames[3].stamp_ns - frames[2].stamp_ns == 100_000_000
    jpeg = [f.image for f in BagSource(out, topic="/camera/image_raw/compressed")]
    assert np.abs(jpeg[5].astype(int) - frames[5].image.astype(int)).mean() < 4.0
    truth = load_mot_gt(gt)
    for k, msg in enumerate(read_messages(info, ["/camera/ground_truth"])):
        stamp, frame_truth = truth_from_cdr(msg.data)
        assert stamp == frames[k].stamp_ns
        np.testing.assert_allclose(frame_truth.boxes, truth[k + 1].boxes, atol=1e-9)
        assert list(frame_truth.ids) == list(truth[k + 1].ids)
        np.testing.assert_allclose(frame_truth.ignore, truth[k + 1].ignore.reshape(-1, 4), atol=1e-9)


def _fake_run(n: int, drop: set[int], seed: int = 0):
    """Published images, outputs with noisy boxes around a walking person, and the truth."""
    rng = np.random.default_rng(seed)
    from perception.eval.mot import FrameTruth

    truth, outputs, published = {}, {}, []
    for k in range(n):
        person = np.array([[10.0 + 2 * k, 20.0, 12.0, 30.0], [60.0, 10.0 + k, 10.0, 25.0]])
        truth[k + 1] = FrameTruth(person, np.array([1, 2]), np.array([[0.0, 0.0, 5.0, 5.0]]))
        stamp = 1_000 + k
        published.append(Published(stamp, 10_000_000_000 + k * 100_000_000))
        if k in drop:
            continue
        boxes = np.vstack([person + rng.normal(0, 1.5, person.shape), [[0.5, 0.0, 5.0, 5.0]], [[90, 90, 8, 8]]])
        scores = rng.uniform(0.3, 1.0, len(boxes))
        outputs[stamp] = Output(boxes, scores, np.arange(len(boxes)), published[-1].wall_ns + 40_000_000 + k * 1000)
    return published, outputs, truth


def test_replay_metrics_are_eval_detects_on_the_same_frames():
    published, outputs, truth = _fake_run(30, drop={12, 20})
    cfg = DetectorConfig()
    score = score_replay(published, outputs, truth, cfg)
    m = score.metrics
    assert (m["frames"], m["processed"], m["drops"]) == (30, 28, 2)
    assert m["latency_ms"]["p50"] == pytest.approx(40.015, abs=0.01)
    assert m["throughput_fps"] == pytest.approx(27 / 2.90003, rel=1e-3)
    run = MethodRun({k + 1: (outputs[p.stamp_ns].boxes, outputs[p.stamp_ns].scores) if p.stamp_ns in outputs
                     else (np.zeros((0, 4)), np.zeros(0)) for k, p in enumerate(published)})
    direct = evaluate({"discovery": run}, truth, scored_frames(truth, 30), cfg)["discovery"]
    for key in ("precision", "recall", "ap50", "mota", "idf1"):
        assert m["detection"][key] == pytest.approx(direct[key], abs=1e-12), key
    scored = [f for f in score.frames if f["scored"]]
    assert len(scored) == m["detection"]["frames_evaluated"] == 25
    assert sum(f["tp"] for f in scored) == m["detection"]["tp"]
    assert sum(f["fp"] for f in scored) == m["detection"]["fp"]
    assert sum(f["fn"] for f in scored) == m["detection"]["fn"]
    dropped = score.frames[12]
    assert dropped["dropped"] and dropped["latency_ms"] is None and dropped["fn"] == 2
    assert all(f["ignored"] <= 1 for f in score.frames)


def test_charts_are_valid_svg_and_cover_their_data():
    assert nice_ticks(0, 1057)[-1] >= 1057 and nice_ticks(0, 1057)[0] == 0
    svg = line_chart([("a", [0, 1, 2], [1.0, None, 3.0]), ("b", [0, 1], [2.0, 2.5])], "t", "x", "y", markers=True)
    root = ET.fromstring(svg)
    assert root.tag.endswith("svg") and svg.count("<circle") == 4
    ET.fromstring(histogram([("h", [1.0, 2.0, 2.5, 9.0])], "h", "ms"))
    assert "no data" in line_chart([("", [], [])], "empty", "x", "y")


def test_report_page_has_every_section():
    published, outputs, truth = _fake_run(12, drop={3})
    score = score_replay(published, outputs, truth, DetectorConfig())
    views = [RunView("adaptation_off", score.metrics, score.frames), RunView("adaptation_on", score.metrics,
                                                                             score.frames)]
    page = render("r", views, ["note"], {"peak_rate_hz": 8.0, "max_drop_fraction": 0.05, "trials": [
        {"kind": "search", "rate_hz": 8.0, "published": 30, "processed": 30, "drop_fraction": 0.0,
         "latency_ms": {"p50": 40.0, "p99": 80.0}, "jitter_ms": 3.0}]})
    for text in ("Latency per frame", "Latency distribution", "Throughput", "Dropped frames", "Detections per scored",
                 "drift", "Adaptation", "Peak rate", "adaptation_on", "8.000 Hz"):
        assert text in page, text
    assert page.count("<svg") == 8
