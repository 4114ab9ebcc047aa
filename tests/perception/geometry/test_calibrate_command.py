"""``dualstream calibrate``: the YAML, report and pictures it writes, and its errors (exit 2, one line naming why)."""

from __future__ import annotations

import json
from pathlib import Path

import av
import cv2
import numpy as np
import pytest

from perception.cli import main
from perception.geometry.camera_yaml import load_camera_yaml


def _render_views(folder: Path, camera, renderer, poses, count: int = 8, seed: int = 4) -> list[np.ndarray]:
    folder.mkdir(parents=True, exist_ok=True)
    images = [renderer(camera, r, t, supersample=1) for r, t in poses(count, seed)]
    for k, image in enumerate(images):
        cv2.imwrite(str(folder / f"view{k:02d}.png"), image)
    return images


@pytest.mark.data
def test_calibrates_the_opencv_sample_images(shared_data: Path, tmp_path: Path, capsys):
    out = tmp_path / "calibration" / "left.yaml"
    rc = main(["calibrate", "--images", str(shared_data / "calibration"), "--pattern", "left*.jpg", "--board", "9x6",
               "--square", "0.025", "--out", str(out), "--report-dir", str(tmp_path / "report")])
    assert rc == 0
    model = load_camera_yaml(out)
    assert model.camera_name == "left" and model.size == (640, 480)
    assert model.K[0, 0] == pytest.approx(535.9157, rel=0.01)  # left_intrinsics.yml
    result = json.loads((tmp_path / "report" / "result.json").read_text())
    assert result["rms_px"] < 0.5 and len(result["views_used"]) == 13 and result["no_board"] == []
    assert len(result["per_view_px"]) == 13 and result["coverage"]["cells_covered"] > 0.5
    for name in ("corners.jpg", "undistorted.jpg"):
        picture = cv2.imread(str(tmp_path / "report" / name))
        assert picture is not None and picture.shape[0] == 480
    assert "RMS" in capsys.readouterr().out


def test_folder_of_synthetic_views_with_one_blank(tmp_path: Path, distorted_camera, board_renderer, poses):
    _render_views(tmp_path / "imgs", distorted_camera, board_renderer, poses)
    cv2.imwrite(str(tmp_path / "imgs" / "view99.png"), np.full((480, 640), 90, np.uint8))
    rc = main(["calibrate", "--images", str(tmp_path / "imgs"), "--out", str(tmp_path / "cam.yaml"),
               "--report-dir", str(tmp_path / "r")])
    assert rc == 0
    model = load_camera_yaml(tmp_path / "cam.yaml")
    assert model.K[0, 0] == pytest.approx(420.0, rel=0.02)
    result = json.loads((tmp_path / "r" / "result.json").read_text())
    assert result["no_board"] == ["view99.png"] and result["images_seen"] == 9 and result["warnings"] == []


def test_video_frames_held_still_are_near_duplicates(tmp_path: Path, distorted_camera, board_renderer, poses):
    images = _render_views(tmp_path / "imgs", distorted_camera, board_renderer, poses, count=6, seed=5)
    video = tmp_path / "board.mp4"
    with av.open(str(video), "w") as container:
        stream = container.add_stream("h264", rate=10, options={"crf": "12"})
        stream.width, stream.height, stream.pix_fmt = 640, 480, "yuv420p"
        for image in images:
            for _ in range(3):  # the board held still for three frames
                frame = av.VideoFrame.from_ndarray(cv2.cvtColor(image, cv2.COLOR_GRAY2RGB), format="rgb24")
                container.mux(stream.encode(frame))
        container.mux(stream.encode(None))
    rc = main(["calibrate", "--video", str(video), "--every", "1", "--out", str(tmp_path / "v.yaml"),
               "--report-dir", str(tmp_path / "r")])
    assert rc == 0
    result = json.loads((tmp_path / "r" / "result.json").read_text())
    assert result["boards_found"] == 18
    assert len(result["views_used"]) == 6
    assert sum("near-duplicate" in reason for reason in result["rejected"].values()) == 12


def test_errors_name_the_problem(tmp_path: Path, distorted_camera, board_renderer, poses, capsys):
    _render_views(tmp_path / "imgs", distorted_camera, board_renderer, poses, count=4)
    args = ["--out", str(tmp_path / "x.yaml"), "--report-dir", str(tmp_path / "r")]
    assert main(["calibrate", "--images", str(tmp_path / "imgs"), "--board", "9x7", *args]) == 2
    assert "no 9x7 (25 mm squares) board found in any of 4 image(s)" in capsys.readouterr().err
    assert main(["calibrate", "--images", str(tmp_path / "imgs"), "--board", "9by6", *args]) == 2
    assert "board '9by6': expected COLSxROWS" in capsys.readouterr().err
    assert main(["calibrate", "--images", str(tmp_path / "nothing"), *args]) == 2
    assert "not a directory" in capsys.readouterr().err
    assert main(["calibrate", "--topic", "/camera/image_raw", "--bag", str(tmp_path / "nobag"), *args]) == 2
    assert "nobag: no such bag" in capsys.readouterr().err
    assert not (tmp_path / "x.yaml").exists()


@pytest.mark.data
def test_a_sub_board_is_flagged(shared_data: Path, tmp_path: Path):
    rc = main(["calibrate", "--images", str(shared_data / "calibration"), "--pattern", "left0*.jpg", "--board", "8x6",
               "--out", str(tmp_path / "s.yaml"), "--report-dir", str(tmp_path / "r")])
    assert rc == 0  # OpenCV finds an 8x6 pattern inside the 9x6 board; the report says so
    warnings = json.loads((tmp_path / "r" / "result.json").read_text())["warnings"]
    assert len(warnings) == 1 and "9x6 board" in warnings[0]


@pytest.mark.data
def test_a_bag_topic_without_a_board_says_so(shared_data: Path, tmp_path: Path, capsys):
    rc = main(["calibrate", "--topic", "/camera/image_raw", "--bag", str(shared_data / "bags" / "rosbag2_vtest_mcap"),
               "--every", "10", "--out", str(tmp_path / "x.yaml"), "--report-dir", str(tmp_path / "r")])
    assert rc == 2
    assert "no 9x6 (25 mm squares) board found in any of 5 image(s)" in capsys.readouterr().err
