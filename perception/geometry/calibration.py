"""Intrinsic calibration from chessboard views with OpenCV (Zhang 2000; Kannala-Brandt 2006 for fisheye).

``calibrate_views`` solves with ``cv2.calibrateCamera`` (pinhole, ``plumb_bob`` distortion) or ``cv2.fisheye.calibrate``
(``equidistant``), reports the RMS reprojection error over all corners (OpenCV's definition: sqrt of the mean squared
pixel residual) and the same per view, and sets the projection matrix of the undistorted image as ROS
camera_calibration does for a monocular camera: ``cv2.getOptimalNewCameraMatrix`` with ``alpha`` (0: only valid
pixels, 1: every source pixel kept) or, for fisheye, ``estimateNewCameraMatrixForUndistortRectify`` with balance =
``alpha``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import cv2
import numpy as np

from perception.geometry.camera_model import CalibrationError, CameraModel
from perception.geometry.chessboard import BoardView, Chessboard

MODELS = ("pinhole", "fisheye")
MIN_VIEWS = 3


@dataclass
class CalibrationResult:
    """The calibrated camera, the RMS reprojection error (px) and per-view RMS errors (name -> px)."""

    camera: CameraModel
    rms_px: float
    per_view_px: dict[str, float]
    extrinsics: dict[str, tuple[np.ndarray, np.ndarray]] = field(default_factory=dict)  # name -> (rvec, tvec)

    def summary(self) -> dict:
        K = self.camera.K
        return {"rms_px": round(self.rms_px, 5), "fx": float(K[0, 0]), "fy": float(K[1, 1]), "cx": float(K[0, 2]),
                "cy": float(K[1, 2]), "distortion_model": self.camera.distortion_model,
                "distortion": [float(v) for v in self.camera.D],
                "per_view_px": {k: round(v, 5) for k, v in self.per_view_px.items()}}


def calibrate_views(views: list[BoardView], board: Chessboard, model: str = "pinhole", alpha: float = 0.0,
                    camera_name: str = "camera") -> CalibrationResult:
    """Calibrate from ``views`` (all of the same image size); raises ``CalibrationError`` naming the problem."""
    if model not in MODELS:
        raise CalibrationError(f"model '{model}': expected one of {list(MODELS)}")
    if len(views) < MIN_VIEWS:
        raise CalibrationError(f"{len(views)} usable view(s) of the {board} board: need at least {MIN_VIEWS} "
                               "(is the board size right? it counts inner corners)")
    sizes = {v.image_size for v in views}
    if len(sizes) != 1:
        raise CalibrationError(f"views of different image sizes {sorted(sizes)}: calibrate one resolution at a time")
    size = sizes.pop()
    obj = board.object_points()
    if model == "fisheye":
        K, D, rvecs, tvecs = _fisheye(views, obj, size)
        P = cv2.fisheye.estimateNewCameraMatrixForUndistortRectify(K, D, size, np.eye(3), balance=alpha)
        distortion_model = "equidistant"
    else:
        _, K, D, rvecs, tvecs = cv2.calibrateCamera([obj] * len(views), [v.corners for v in views], size, None, None)
        P, _ = cv2.getOptimalNewCameraMatrix(K, D, size, alpha, size)
        distortion_model = "plumb_bob"
    camera = CameraModel(width=size[0], height=size[1], K=K, D=np.asarray(D).ravel(),
                         distortion_model=distortion_model, P=np.hstack([P, np.zeros((3, 1))]),
                         camera_name=camera_name)
    per_view, squared = {}, []
    for view, rvec, tvec in zip(views, rvecs, tvecs):
        residual = project(camera, obj, rvec, tvec) - view.corners
        sq = np.sum(residual.astype(np.float64) ** 2, axis=1)
        per_view[view.name] = float(np.sqrt(sq.mean()))
        squared.append(sq)
    rms = float(np.sqrt(np.concatenate(squared).mean()))
    extrinsics = {v.name: (np.asarray(r).ravel(), np.asarray(t).ravel()) for v, r, t in zip(views, rvecs, tvecs)}
    return CalibrationResult(camera=camera, rms_px=rms, per_view_px=per_view, extrinsics=extrinsics)


def project(camera: CameraModel, points: np.ndarray, rvec: np.ndarray, tvec: np.ndarray) -> np.ndarray:
    """(N, 3) board points seen from pose (rvec, tvec) -> (N, 2) raw-image pixels, distortion included."""
    if camera.is_fisheye:
        out, _ = cv2.fisheye.projectPoints(points.reshape(-1, 1, 3).astype(np.float64), np.asarray(rvec, np.float64),
                                           np.asarray(tvec, np.float64), camera.K, camera.D)
    else:
        out, _ = cv2.projectPoints(points, rvec, tvec, camera.K, camera.D)
    return out.reshape(-1, 2)


def _fisheye(views: list[BoardView], obj: np.ndarray, size: tuple[int, int]):
    flags = cv2.fisheye.CALIB_RECOMPUTE_EXTRINSIC | cv2.fisheye.CALIB_FIX_SKEW
    criteria = (cv2.TERM_CRITERIA_COUNT + cv2.TERM_CRITERIA_EPS, 100, 1e-8)
    objs = [obj.reshape(-1, 1, 3).astype(np.float64)] * len(views)
    imgs = [v.corners.reshape(-1, 1, 2).astype(np.float64) for v in views]
    try:
        _, K, D, rvecs, tvecs = cv2.fisheye.calibrate(objs, imgs, size, np.zeros((3, 3)), np.zeros((4, 1)),
                                                     flags=flags, criteria=criteria)
    except cv2.error as exc:
        raise CalibrationError(f"fisheye calibration failed on these {len(views)} views (an ill-conditioned view, "
                               f"e.g. a board seen edge-on?): {exc.err}") from None
    return K, D, rvecs, tvecs
