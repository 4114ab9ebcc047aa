"""Camera geometry: ``CameraModel`` and its camera_info YAML, chessboard calibration, undistort/rectify maps.

Modules: ``camera_model`` (the model, CameraInfo fields as a dict), ``camera_yaml`` (ROS camera_calibration YAML),
``chessboard`` (board corners), ``view_selection`` (which views to use), ``calibration`` (OpenCV calibration),
``rectify`` (cached undistort/rectify maps), ``pictures`` (corner and undistortion pictures).
"""

from __future__ import annotations

from perception.geometry.camera_model import CalibrationError, CameraModel, RegionOfInterest
from perception.geometry.camera_yaml import load_camera_yaml, loads_camera_yaml, save_camera_yaml
from perception.geometry.rectify import Rectifier

__all__ = ["CalibrationError", "CameraModel", "RegionOfInterest", "Rectifier", "load_camera_yaml",
           "loads_camera_yaml", "save_camera_yaml"]
