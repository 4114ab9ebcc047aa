"""Rectifier: a distorted checkerboard comes out with straight rows and columns; maps cached per resolution."""

from __future__ import annotations

import numpy as np
import pytest

from perception.geometry.camera_model import CalibrationError
from perception.geometry.chessboard import Chessboard, detect_board
from perception.geometry.rectify import Rectifier

BOARD = Chessboard(9, 6, 0.025)
FRONT = (np.array([0.05, -0.08, 0.02]), np.array([-0.1, -0.0625, 0.25]))  # the board fills most of the image


def test_rectification_straightens_a_distorted_checkerboard(distorted_camera, board_renderer, straightness):
    raw = board_renderer(distorted_camera, *FRONT)
    before = detect_board(raw, BOARD)
    assert before is not None
    bent = straightness(before.corners, BOARD.cols, BOARD.rows)
    rectified = Rectifier(distorted_camera).rectify(raw)
    assert rectified.shape == raw.shape and rectified.dtype == np.uint8
    after = detect_board(rectified, BOARD)
    assert after is not None
    straight = straightness(after.corners, BOARD.cols, BOARD.rows)
    # the floor: corners found on a board rendered without distortion are this straight (sub-pixel detection noise)
    ideal = distorted_camera.replace(D=np.zeros(5))
    floor = straightness(detect_board(board_renderer(ideal, *FRONT), BOARD).corners, BOARD.cols, BOARD.rows)
    assert bent > 0.8, bent  # barrel distortion bends the rows by about a pixel RMS
    assert straight < 0.2 and straight < floor + 0.05, (straight, floor)
    assert bent / straight > 6


def test_rectified_points_match_the_rectified_image(distorted_camera, board_renderer, straightness):
    rectifier = Rectifier(distorted_camera)
    raw = board_renderer(distorted_camera, *FRONT)
    corners = detect_board(raw, BOARD).corners
    mapped = rectifier.rectify_points(corners, 640, 480)
    found = detect_board(rectifier.rectify(raw), BOARD).corners
    error = np.linalg.norm(mapped - found, axis=1)
    assert error.mean() < 0.12 and error.max() < 0.35, (error.mean(), error.max())
    assert straightness(mapped, BOARD.cols, BOARD.rows) < 0.2


def test_fisheye_rectification_straightens_lines(fisheye_camera, board_renderer, straightness):
    raw = board_renderer(fisheye_camera, np.array([0.1, 0.1, 0.0]), np.array([-0.1, -0.0625, 0.22]))
    before = detect_board(raw, BOARD)
    after = detect_board(Rectifier(fisheye_camera).rectify(raw), BOARD)
    assert before is not None and after is not None
    bent, straight = (straightness(v.corners, BOARD.cols, BOARD.rows) for v in (before, after))
    assert straight < 0.2 and bent / straight > 5, (bent, straight)


def test_maps_are_cached_per_resolution_and_scaled(distorted_camera, board_renderer, straightness):
    rectifier = Rectifier(distorted_camera)
    full = rectifier.maps(640, 480)
    assert rectifier.maps(640, 480) is full  # cached, not rebuilt
    half = rectifier.maps(320, 240)
    assert half[0].shape[:2] == (240, 320)
    small_camera = distorted_camera.scaled(320, 240)
    raw = board_renderer(small_camera, *FRONT)
    after = detect_board(rectifier.rectify(raw), BOARD)  # a half-size stream rectified with the full calibration
    assert after is not None and straightness(after.corners, BOARD.cols, BOARD.rows) < 0.2
    assert rectifier.rectified_model(320, 240).K[0, 0] == pytest.approx(distorted_camera.P[0, 0] / 2)
    for size in [(160, 120), (480, 360), (800, 600), (1280, 960)]:
        rectifier.maps(*size)
    assert len(rectifier._maps) == rectifier.max_cached  # bounded cache


def test_a_cropped_stream_is_refused(distorted_camera):
    with pytest.raises(CalibrationError, match=r"640x360: aspect ratio differs.*640x480"):
        Rectifier(distorted_camera).rectify(np.zeros((360, 640, 3), np.uint8))


def test_latest_rectifier_rebuilds_only_on_a_new_calibration(distorted_camera):
    from perception.geometry.rectify import LatestRectifier

    latest = LatestRectifier()
    assert latest.rectifier is None and "no camera_info" in latest.problem
    info = distorted_camera.to_camera_info()
    assert latest.update(info)
    first = latest.rectifier
    assert latest.update(distorted_camera.to_camera_info()) and latest.rectifier is first  # same values: kept
    changed = distorted_camera.replace(D=np.zeros(5)).to_camera_info()
    assert latest.update(changed) and latest.rectifier is not first
    blank = {**info, "k": [0.0] * 9}  # an uncalibrated driver
    assert not latest.update(blank)
    assert latest.rectifier is None and "camera_info unusable" in latest.problem and "uncalibrated" in latest.problem
