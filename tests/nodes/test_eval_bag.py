"""`dualstream eval bag` on a bag made from vtest.avi (first frames) with its ground truth: the three files, the
metrics' keys, and detection numbers that agree with `dualstream eval detect` on the same frames."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from perception.runtime.processes import graph_environment

pytestmark = pytest.mark.ros
FRAMES = 20


def _cli(args, env, timeout=240):
    result = subprocess.run([sys.executable, "-m", "perception.cli", *args], env=env, capture_output=True, text=True,
                            timeout=timeout)
    assert result.returncode == 0, result.stderr[-3000:]
    return result


def test_eval_bag_agrees_with_eval_detect(ros, tmp_path, shared_data):
    video = shared_data / "videos" / "vtest.avi"
    gt = shared_data / "mot15" / "PETS09-S2L1" / "gt" / "gt.txt"
    env = graph_environment(ros.env())
    _cli(["bag", "from-video", "--video", str(video), "--gt", str(gt), "--out", str(tmp_path / "bag"),
          "--max-frames", str(FRAMES)], env)
    report = tmp_path / "report"
    detect = subprocess.Popen([sys.executable, "-m", "perception.cli", "eval", "detect", "--video", str(video), "--gt",
                               str(gt), "--methods", "discovery", "--encoder-scale", "1.0", "--max-frames",
                               str(FRAMES), "--json", str(tmp_path / "detect.json"), "--threads", "1"],
                              env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        _cli(["eval", "bag", "--bag", str(tmp_path / "bag"), "--report", str(report), "--match-eval-detect",
              "--quiet", "--examples", "2"], env)
        _, detect_err = detect.communicate(timeout=240)
    finally:
        if detect.poll() is None:
            detect.kill()
    assert detect.returncode == 0, detect_err[-3000:]
    metrics = json.loads((report / "metrics.json").read_text())
    assert (metrics["frames"], metrics["processed"], metrics["drops"]) == (FRAMES, FRAMES, 0)
    assert metrics["throughput_fps"] > 0 and metrics["latency_ms"]["p50"] > 0
    assert metrics["latency_ms"]["p50"] <= metrics["latency_ms"]["p95"] <= metrics["latency_ms"]["p99"]
    det = metrics["detection"]
    reference = json.loads((tmp_path / "detect.json").read_text())
    assert det["frames_evaluated"] == reference["frames_evaluated"] == FRAMES - 5
    for key in ("precision", "recall", "ap50", "mota", "idf1"):
        assert abs(det[key] - reference["methods"]["discovery"][key]) <= 0.01, (key, det[key], reference)
    rows = [json.loads(line) for line in (report / "frames.jsonl").read_text().splitlines()]
    assert len(rows) == FRAMES and all({"stamp_ns", "detections", "matches", "tp", "fp", "fn", "latency_ms"} <= set(r)
                                       for r in rows)
    assert sum(r["tp"] for r in rows if r["scored"]) == det["tp"]
    page = (report / "report.html").read_text()
    assert page.count("<svg") >= 7 and page.count("data:image/png;base64") == 2


def test_eval_bag_names_a_missing_topic(tmp_path, shared_data):
    result = subprocess.run([sys.executable, "-m", "perception.cli", "eval", "bag", "--bag",
                             str(shared_data / "bags" / "rosbag2_vtest_mcap"), "--topic", "/camera/image",
                             "--report", str(tmp_path / "r")], capture_output=True, text=True, timeout=60)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert "/camera/image not in the bag" in result.stderr and "/camera/image_raw/compressed" in result.stderr
