"""Fixtures for the geometry tests: a renderer of a chessboard seen through a known (distorted) camera, and a
straightness measure of corner rows and columns.

The suite runs with ``--import-mode=importlib``, so helpers reach the tests as fixtures, never by import.
"""

from __future__ import annotations

from typing import Callable

import cv2
import numpy as np
import pytest

from perception.geometry.camera_model import CameraModel


def render_board(camera: CameraModel, rvec, tvec, cols: int = 9, rows: int = 6, square: float = 0.025,
                 supersample: int = 2) -> np.ndarray:
    """(H, W) uint8 picture of a chessboard with ``cols`` x ``rows`` inner corners at pose (rvec, tvec), through
    ``camera`` (its distortion included): each pixel's ray is undistorted and intersected with the board plane.
    The board has one square of white margin; the background is mid grey."""
    w, h = camera.size
    s = supersample
    xs = (np.arange(w * s) + 0.5) / s - 0.5
    ys = (np.arange(h * s) + 0.5) / s - 0.5
    uv = np.stack(np.meshgrid(xs, ys), axis=-1).reshape(-1, 1, 2)
    if camera.is_fisheye:
        rays = cv2.fisheye.undistortPoints(uv, camera.K, camera.D).reshape(-1, 2)
    else:
        rays = cv2.undistortPoints(uv, camera.K, camera.D).reshape(-1, 2)
    R, _ = cv2.Rodrigues(np.asarray(rvec, np.float64))
    H = np.column_stack([R[:, 0], R[:, 1], np.asarray(tvec, np.float64)])
    plane = np.linalg.solve(H, np.column_stack([rays, np.ones(len(rays))]).T)
    with np.errstate(divide="ignore", invalid="ignore"):
        bx, by = plane[0] / plane[2], plane[1] / plane[2]
    i, j = np.floor(bx / square), np.floor(by / square)
    on_squares = (i >= -1) & (i <= cols - 1) & (j >= -1) & (j <= rows - 1)
    on_margin = (i >= -2) & (i <= cols) & (j >= -2) & (j <= rows)
    image = np.full(len(rays), 128.0)
    image[on_margin] = 255.0
    image[on_squares & ((i + j) % 2 == 0)] = 0.0
    image = image.reshape(h * s, w * s)
    return cv2.resize(image, (w, h), interpolation=cv2.INTER_AREA).round().astype(np.uint8)


def straightness_px(corners: np.ndarray, cols: int, rows: int) -> float:
    """RMS distance (px) of the corners from the straight line fitted (total least squares) to each row and column
    of the board: 0 for a perfect pinhole image of a flat board."""
    grid = np.asarray(corners, np.float64).reshape(rows, cols, 2)
    residuals = []
    for line in [*grid, *grid.transpose(1, 0, 2)]:
        centred = line - line.mean(axis=0)
        normal = np.linalg.svd(centred)[2][1]  # the direction of least spread
        residuals.append(centred @ normal)
    return float(np.sqrt(np.mean(np.concatenate(residuals) ** 2)))


@pytest.fixture
def board_renderer() -> Callable[..., np.ndarray]:
    return render_board


@pytest.fixture
def straightness() -> Callable[[np.ndarray, int, int], float]:
    return straightness_px


@pytest.fixture
def distorted_camera() -> CameraModel:
    """640x480, strong barrel distortion (a wide-angle lens)."""
    K = np.array([[420.0, 0.0, 322.5], [0.0, 418.0, 236.0], [0.0, 0.0, 1.0]])
    return CameraModel(width=640, height=480, K=K, D=np.array([-0.32, 0.11, 0.0008, -0.0005, -0.015]),
                       camera_name="synthetic")


@pytest.fixture
def fisheye_camera() -> CameraModel:
    K = np.array([[300.0, 0.0, 318.0], [0.0, 300.0, 242.0], [0.0, 0.0, 1.0]])
    return CameraModel(width=640, height=480, K=K, D=np.array([0.06, -0.02, 0.004, -0.001]),
                       distortion_model="equidistant", camera_name="synthetic_fisheye")


def board_poses(count: int, seed: int = 0) -> list[tuple[np.ndarray, np.ndarray]]:
    """``count`` varied, seeded poses of a 9x6, 25 mm board in front of the camera (rvec, tvec)."""
    rng = np.random.default_rng(seed)
    poses = []
    for _ in range(count):
        rvec = np.array([rng.uniform(-0.5, 0.5), rng.uniform(-0.5, 0.5), rng.uniform(-0.3, 0.3)])
        tvec = np.array([rng.uniform(-0.16, 0.02), rng.uniform(-0.11, 0.0), rng.uniform(0.30, 0.45)])
        poses.append((rvec, tvec))
    return poses


@pytest.fixture
def poses() -> Callable[..., list[tuple[np.ndarray, np.ndarray]]]:
    return board_poses
