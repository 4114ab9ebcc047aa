"""The ROS ``camera_calibration`` YAML format (``camera_calibration_parsers``), to and from ``CameraModel``.

::

    image_width: 640
    image_height: 480
    camera_name: left
    camera_matrix: {rows: 3, cols: 3, data: [fx, 0, cx, 0, fy, cy, 0, 0, 1]}
    distortion_model: plumb_bob
    distortion_coefficients: {rows: 1, cols: 5, data: [k1, k2, p1, p2, k3]}
    rectification_matrix: {rows: 3, cols: 3, data: [...]}
    projection_matrix: {rows: 3, cols: 4, data: [...]}

Read with ``yaml.safe_load``; written atomically (``perception.io.atomic``) with PyYAML's float representation, which
round-trips every float64 exactly. Errors name the file and the field.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from perception.geometry.camera_model import CalibrationError, CameraModel
from perception.io.atomic import atomic_write_text

MATRIX_FIELDS = {  # YAML key -> (CameraModel attribute, rows, cols); cols of D depend on the model
    "camera_matrix": ("K", 3, 3),
    "distortion_coefficients": ("D", 1, None),
    "rectification_matrix": ("R", 3, 3),
    "projection_matrix": ("P", 3, 4),
}
REQUIRED = ("image_width", "image_height", "camera_matrix", "distortion_model", "distortion_coefficients")


def _matrix(doc: dict, key: str, where: str) -> list[float]:
    _, rows, cols = MATRIX_FIELDS[key]
    entry = doc[key]
    if not isinstance(entry, dict) or "data" not in entry:
        raise CalibrationError(f"{where}: {key}: expected a mapping with rows, cols and data, got {entry!r}")
    data = entry["data"]
    if not isinstance(data, list):
        raise CalibrationError(f"{where}: {key}.data: expected a list of numbers, got {data!r}")
    got_rows, got_cols = entry.get("rows"), entry.get("cols")
    if got_rows is not None or got_cols is not None:
        if not (isinstance(got_rows, int) and isinstance(got_cols, int)) or got_rows * got_cols != len(data):
            raise CalibrationError(f"{where}: {key}: rows x cols = {got_rows} x {got_cols} does not match the "
                                   f"{len(data)} values of data")
        vector = cols is None and 1 in (got_rows, got_cols)  # D: 1 x n (ROS) or n x 1 (OpenCV)
        if not vector and (got_rows, got_cols) != (rows, cols):
            raise CalibrationError(f"{where}: {key}: expected {rows} x {cols or 'n'}, got {got_rows} x {got_cols}")
    for i, value in enumerate(data):
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise CalibrationError(f"{where}: {key}.data[{i}]: expected a number, got {value!r}")
    return [float(v) for v in data]


def model_from_dict(doc: Any, where: str = "camera calibration") -> CameraModel:
    """A parsed calibration YAML document -> ``CameraModel``."""
    if not isinstance(doc, dict):
        raise CalibrationError(f"{where}: expected a mapping of calibration fields, got {type(doc).__name__}")
    missing = [k for k in REQUIRED if k not in doc]
    if missing:
        raise CalibrationError(f"{where}: missing fields {missing}")
    values = {attr: _matrix(doc, key, where) for key, (attr, _, _) in MATRIX_FIELDS.items() if key in doc}
    try:
        return CameraModel(width=doc["image_width"], height=doc["image_height"],
                           camera_name=str(doc.get("camera_name") or "camera"),
                           distortion_model=doc["distortion_model"], **values)
    except CalibrationError as exc:
        raise CalibrationError(f"{where}: {exc}") from None


def model_to_dict(model: CameraModel) -> dict[str, Any]:
    """``CameraModel`` -> the YAML document (plain Python values, key order as camera_calibration writes it)."""
    def matrix(value, rows: int, cols: int) -> dict[str, Any]:
        return {"rows": rows, "cols": cols, "data": [float(v) for v in value.ravel()]}

    return {
        "image_width": model.width,
        "image_height": model.height,
        "camera_name": model.camera_name,
        "camera_matrix": matrix(model.K, 3, 3),
        "distortion_model": model.distortion_model,
        "distortion_coefficients": matrix(model.D, 1, model.D.size),
        "rectification_matrix": matrix(model.R, 3, 3),
        "projection_matrix": matrix(model.P, 3, 4),
    }


def dumps_camera_yaml(model: CameraModel) -> str:
    return yaml.safe_dump(model_to_dict(model), sort_keys=False, default_flow_style=None, width=1000)


def loads_camera_yaml(text: str, where: str = "camera calibration") -> CameraModel:
    try:
        doc = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise CalibrationError(f"{where}: not valid YAML: {exc}") from None
    return model_from_dict(doc, where)


def load_camera_yaml(path: str | Path) -> CameraModel:
    """Read a camera_calibration YAML file; ``FileNotFoundError`` when absent, ``CalibrationError`` when bad."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise CalibrationError(f"{path}: not a text file ({exc})") from None
    return loads_camera_yaml(text, str(path))


def save_camera_yaml(model: CameraModel, path: str | Path) -> Path:
    """Write ``model`` to ``path`` atomically (temporary file, fsync, rename)."""
    return atomic_write_text(path, dumps_camera_yaml(model))
