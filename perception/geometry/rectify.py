"""Undistortion and rectification of images and points with a ``CameraModel``, as ROS image_proc does.

The rectified image is the view of the ideal camera ``P`` (3x4, its left 3x3 as the new camera matrix) rotated by
``R``: ``cv2.initUndistortRectifyMap`` (pinhole) or ``cv2.fisheye.initUndistortRectifyMap`` (equidistant) build the
maps and ``cv2.remap`` applies them. Maps are built once per image resolution and cached; a stream whose resolution
differs from the calibration uses the model scaled to it (``CameraModel.scaled``), so a camera calibrated at 1280x960
rectifies its 640x480 stream too. Detections made on a rectified image are in the rectified frame: pixel coordinates
of ``P`` (``rectified_model``), not of the raw image.
"""

from __future__ import annotations

import threading

import cv2
import numpy as np

from perception.geometry.camera_model import CalibrationError, CameraModel

class Rectifier:
    """Rectifies images of any resolution with the aspect ratio of ``camera``; thread-safe map cache."""

    def __init__(self, camera: CameraModel, interpolation: int = cv2.INTER_LINEAR, max_cached: int = 4) -> None:
        self.camera = camera
        self.interpolation = interpolation
        self.max_cached = max_cached
        self._maps: dict[tuple[int, int], tuple[np.ndarray, np.ndarray]] = {}
        self._lock = threading.Lock()

    def model_for(self, width: int, height: int) -> CameraModel:
        """The calibration scaled to a ``width`` x ``height`` stream; refuses a different aspect ratio (a crop)."""
        return self.camera.for_resolution(width, height)

    def rectified_model(self, width: int, height: int) -> CameraModel:
        """The camera of the rectified image at that resolution: K = P's 3x3, no distortion, identity R."""
        cam = self.model_for(width, height)
        K = cam.P[:, :3].copy()
        D = np.zeros(4 if cam.is_fisheye else 5)
        return cam.replace(K=K, D=D, distortion_model="plumb_bob", R=np.eye(3), P=cam.P)

    def maps(self, width: int, height: int) -> tuple[np.ndarray, np.ndarray]:
        """The (map1, map2) pair for ``cv2.remap`` at that resolution (fixed-point CV_16SC2, built once)."""
        key = (int(width), int(height))
        with self._lock:
            cached = self._maps.get(key)
        if cached is not None:
            return cached
        cam = self.model_for(*key)
        new_k = cam.P[:, :3]
        if cam.is_fisheye:
            maps = cv2.fisheye.initUndistortRectifyMap(cam.K, cam.D, cam.R, new_k, key, cv2.CV_16SC2)
        else:
            maps = cv2.initUndistortRectifyMap(cam.K, cam.D, cam.R, new_k, key, cv2.CV_16SC2)
        with self._lock:
            if len(self._maps) >= self.max_cached:
                self._maps.pop(next(iter(self._maps)))
            self._maps[key] = maps
        return maps

    def rectify(self, image: np.ndarray) -> np.ndarray:
        """(H, W) or (H, W, C) image -> the rectified image of the same size and type."""
        if image.ndim not in (2, 3) or image.shape[0] == 0 or image.shape[1] == 0:
            raise CalibrationError(f"image of shape {image.shape}: expected (H, W) or (H, W, C)")
        map1, map2 = self.maps(image.shape[1], image.shape[0])
        return cv2.remap(image, map1, map2, self.interpolation, borderMode=cv2.BORDER_CONSTANT)

    def rectify_points(self, points: np.ndarray, width: int, height: int) -> np.ndarray:
        """(N, 2) raw-image pixels -> (N, 2) pixels of the rectified image (``cv2.undistortPoints`` with R and P)."""
        cam = self.model_for(width, height)
        pts = np.asarray(points, np.float64).reshape(-1, 1, 2)
        if cam.is_fisheye:
            out = cv2.fisheye.undistortPoints(pts, cam.K, cam.D, R=cam.R, P=cam.P[:, :3])
        else:
            out = cv2.undistortPoints(pts, cam.K, cam.D, R=cam.R, P=cam.P[:, :3])
        return out.reshape(-1, 2)


class LatestRectifier:
    """The ``Rectifier`` of the newest calibration seen on a camera_info stream (CameraInfo fields as a dict, see
    ``CameraModel.to_camera_info``). The rectifier and its maps are rebuilt only when the calibration changes; an
    unusable calibration (an uncalibrated all-zero K, NaN...) leaves no rectifier and says why in ``problem``."""

    def __init__(self) -> None:
        self.rectifier: Rectifier | None = None
        self.problem = "no camera_info received yet"
        self._key: tuple | None = None

    def update(self, info: dict) -> bool:
        """Take a camera_info; True when a usable rectifier is in place afterwards."""
        key = tuple((name, tuple(value) if isinstance(value, (list, tuple)) else repr(value))
                    for name, value in sorted(info.items()))
        if key == self._key:
            return self.rectifier is not None
        self._key = key
        try:
            model = CameraModel.from_camera_info(info)
        except CalibrationError as exc:
            self.rectifier, self.problem = None, f"camera_info unusable: {exc}"
            return False
        self.rectifier, self.problem = Rectifier(model), ""
        return True
