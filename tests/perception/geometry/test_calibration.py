"""Calibration: OpenCV's sample chessboard images reproduce OpenCV's reference; synthetic boards recover the camera."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from perception.geometry.calibration import calibrate_views
from perception.geometry.camera_model import CalibrationError
from perception.geometry.chessboard import BoardView, Chessboard, detect_board, larger_board_visible
from perception.geometry.rectify import Rectifier
from perception.geometry.view_selection import select_views

BOARD = Chessboard(9, 6, 0.025)


def _reference(folder: Path) -> tuple[np.ndarray, float]:
    """K and RMS of OpenCV's own calibration of the left camera (``left_intrinsics.yml``)."""
    fs = cv2.FileStorage(str(folder / "left_intrinsics.yml"), cv2.FILE_STORAGE_READ)
    try:
        return fs.getNode("camera_matrix").mat(), fs.getNode("avg_reprojection_error").real()
    finally:
        fs.release()


@pytest.mark.data
def test_opencv_sample_images_match_the_reference(shared_data: Path):
    folder = shared_data / "calibration"
    files = sorted(folder.glob("left*.jpg"))
    assert len(files) == 13
    views = [detect_board(cv2.imread(str(f), cv2.IMREAD_GRAYSCALE), BOARD, f.name) for f in files]
    assert all(v is not None for v in views)
    selection = select_views(views, BOARD)
    assert len(selection.kept) == 13, selection.rejected  # distinct, sharp views: all kept
    result = calibrate_views(selection.kept, BOARD, camera_name="left")
    ref_k, ref_rms = _reference(folder)
    assert result.rms_px < 0.5, result.rms_px
    assert result.rms_px < ref_rms  # adaptive sub-pixel window: at least as consistent as OpenCV's sample
    for (i, j) in [(0, 0), (1, 1)]:
        assert result.camera.K[i, j] == pytest.approx(ref_k[i, j], rel=0.01)
    assert result.camera.K[0, 2] == pytest.approx(ref_k[0, 2], abs=5.0)
    assert result.camera.K[1, 2] == pytest.approx(ref_k[1, 2], abs=5.0)
    assert result.camera.D[0] < -0.2  # the sample lens has strong barrel distortion
    assert set(result.per_view_px) == {f.name for f in files}
    rms_from_views = np.sqrt(np.mean(np.square(list(result.per_view_px.values()))))
    assert rms_from_views == pytest.approx(result.rms_px, rel=1e-6)  # same number of corners per view


def _synthetic_views(camera, renderer, poses, count: int, seed: int) -> list[BoardView]:
    views = []
    for k, (rvec, tvec) in enumerate(poses(count, seed)):
        view = detect_board(renderer(camera, rvec, tvec, supersample=1), BOARD, f"pose{k}")
        if view is not None:
            views.append(view)
    return views


def test_pinhole_calibration_recovers_a_known_camera(distorted_camera, board_renderer, poses):
    views = _synthetic_views(distorted_camera, board_renderer, poses, 12, seed=1)
    assert len(views) >= 10
    result = calibrate_views(views, BOARD, camera_name="synthetic")
    assert result.rms_px < 0.5
    truth = distorted_camera.K
    assert result.camera.K[0, 0] == pytest.approx(truth[0, 0], rel=0.01)
    assert result.camera.K[1, 1] == pytest.approx(truth[1, 1], rel=0.01)
    assert abs(result.camera.K[0, 2] - truth[0, 2]) < 3 and abs(result.camera.K[1, 2] - truth[1, 2]) < 3
    assert result.camera.D[0] == pytest.approx(distorted_camera.D[0], abs=0.03)
    assert result.camera.distortion_model == "plumb_bob" and result.camera.camera_name == "synthetic"
    # alpha = 0: the rectified image holds only valid pixels; alpha = 1: every source pixel, so black borders
    white = np.full((480, 640), 255, np.uint8)
    black_share = (Rectifier(result.camera).rectify(white) == 0).mean()
    wide = calibrate_views(views, BOARD, alpha=1.0)
    assert black_share < 0.002 < (Rectifier(wide.camera).rectify(white) == 0).mean()
    assert wide.camera.P[0, 0] < result.camera.P[0, 0]


def test_fisheye_calibration_recovers_a_known_camera(fisheye_camera, board_renderer, poses):
    views = _synthetic_views(fisheye_camera, board_renderer, poses, 12, seed=2)
    assert len(views) >= 10
    result = calibrate_views(views, BOARD, model="fisheye")
    assert result.camera.distortion_model == "equidistant" and result.camera.D.shape == (4,)
    assert result.rms_px < 0.5
    assert result.camera.K[0, 0] == pytest.approx(fisheye_camera.K[0, 0], rel=0.01)
    assert result.camera.K[1, 1] == pytest.approx(fisheye_camera.K[1, 1], rel=0.01)
    assert result.camera.D[0] == pytest.approx(fisheye_camera.D[0], abs=0.03)


def test_too_few_views_and_mixed_sizes_are_refused(distorted_camera, board_renderer, poses):
    views = _synthetic_views(distorted_camera, board_renderer, poses, 3, seed=3)
    with pytest.raises(CalibrationError, match=r"2 usable view\(s\).*at least 3.*inner corners"):
        calibrate_views(views[:2], BOARD)
    odd = BoardView("small", views[0].corners / 2, (320, 240), views[0].blur_px)
    with pytest.raises(CalibrationError, match=r"different image sizes \[\(320, 240\), \(640, 480\)\]"):
        calibrate_views([*views, odd], BOARD)
    with pytest.raises(CalibrationError, match="model 'stereo'"):
        calibrate_views(views, BOARD, model="stereo")


def test_a_wrong_board_size_finds_no_board(distorted_camera, board_renderer):
    image = board_renderer(distorted_camera, np.zeros(3), np.array([-0.1, -0.0625, 0.3]), supersample=1)
    assert detect_board(image, BOARD) is not None
    assert detect_board(image, Chessboard(9, 7, 0.025)) is None
    assert detect_board(image, Chessboard(10, 6, 0.025)) is None
    assert larger_board_visible(image, BOARD) is None
    # OpenCV finds a smaller pattern inside the board; the larger true board is then reported
    assert larger_board_visible(image, Chessboard(8, 6, 0.025)) == BOARD
    assert detect_board(np.full((480, 640), 128, np.uint8), BOARD) is None


@pytest.mark.parametrize("text, square, words", [
    ("9-6", 0.025, "expected COLSxROWS"),
    ("1x6", 0.025, "at least 2x2"),
    ("7x7", 0.025, "square board"),
    ("9x6", 0.0, "positive length"),
])
def test_bad_board_descriptions(text, square, words):
    with pytest.raises(CalibrationError, match=words):
        Chessboard.parse(text, square)
