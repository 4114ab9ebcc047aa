"""``dualstream eval detect`` end to end on a short slice of real data (TUD-Campus, 14 frames; skipped without
../shared/data): every method runs, the JSON has the protocol's fields, the baselines' numbers equal those computed
directly, and the picture is written."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest

from perception.commands.eval_detect import main
from perception.eval.baselines import Mog2Detector
from perception.eval.detect import read_video
from perception.eval.detection_metrics import detection_summary, match_detections, pr_curve
from perception.eval.mot import load_mot_gt

FRAMES = 14


@pytest.fixture(scope="module")
def report(shared_data: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[dict, Path]:
    root = shared_data / "mot15" / "TUD-Campus"
    out = tmp_path_factory.mktemp("detect") / "eval.json"
    status = main(["--video", str(root / "TUD-Campus.mp4"), "--gt", str(root / "gt" / "gt.txt"),
                   "--max-frames", str(FRAMES), "--no-encoder", "--json", str(out),
                   "--cache", str(out.parent / "cache")])
    assert status == 0
    return json.loads(out.read_text()), root


def test_report_fields(report: tuple[dict, Path]) -> None:
    data, _ = report
    assert data["frames_evaluated"] == FRAMES - 5 and data["scored_gt_frames"] == [6, FRAMES]
    assert set(data["methods"]) == {"fewshot", "discovery", "hog", "mog2"}
    for name, m in data["methods"].items():
        for key in ("precision", "recall", "ap50", "fp_per_frame", "fp_per_frame_at_hog_recall", "mota", "idf1"):
            assert key in m, (name, key)
        assert 0.0 <= m["precision"] <= 1.0 and 0.0 <= m["recall"] <= 1.0 and 0.0 <= m["ap50"] <= 1.0
    hog = data["methods"]["hog"]
    assert hog["fp_per_frame_at_hog_recall"] == pytest.approx(hog["fp_per_frame"])
    assert data["hog_params"]["scale"] == 1.0
    picture = cv2.imread(data["picture"])
    assert picture is not None and picture.shape[0] >= 3 * 200


def test_mog2_numbers_match_a_direct_computation(report: tuple[dict, Path]) -> None:
    data, root = report
    truth = load_mot_gt(root / "gt" / "gt.txt")
    detector = Mog2Detector()
    dets = {i + 1: detector(im) for i, im in enumerate(read_video(root / "TUD-Campus.mp4", FRAMES))}
    frames = list(range(6, FRAMES + 1))
    summary = detection_summary(pr_curve(*match_detections(dets, truth, frames)), len(frames))
    for key in ("precision", "recall", "ap50", "fp_per_frame"):
        assert data["methods"]["mog2"][key] == pytest.approx(summary[key]), key


def test_fewshot_learns_people_from_five_frames(report: tuple[dict, Path]) -> None:
    fewshot = report[0]["methods"]["fewshot"]
    # people walk close to the camera: five labelled frames are enough to find most of them
    assert fewshot["recall"] >= 0.5 and fewshot["precision"] >= 0.5, fewshot
    assert np.isfinite(fewshot["mota"]) and fewshot["idf1"] > 0
