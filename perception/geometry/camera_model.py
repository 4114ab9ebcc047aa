"""``CameraModel``: the intrinsics of one camera as ROS ``sensor_msgs/CameraInfo`` describes them (REP 104).

Fields follow CameraInfo: ``K`` (3x3 intrinsics of the raw image), ``D`` (distortion coefficients in OpenCV order),
``distortion_model`` (``plumb_bob``: k1 k2 p1 p2 k3; ``rational_polynomial``: k1 k2 p1 p2 k3 k4 k5 k6;
``equidistant``: the fisheye model k1 k2 k3 k4 of ``cv2.fisheye``), ``R`` (3x3 rectification rotation) and ``P``
(3x4 projection of the rectified image). Pixel coordinates follow OpenCV: the centre of the top-left pixel is (0, 0).

``to_camera_info`` / ``from_camera_info`` convert to and from a plain dict with the CameraInfo field names (``d``,
``k``, ``r``, ``p``, ``width``, ``height``, ``distortion_model``, ``binning_x``, ``binning_y``, ``roi``); the node layer
moves that dict into the message. Every constructor validates: wrong sizes, NaN or an impossible matrix raise
``CalibrationError`` naming the field, what was expected and what was given.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, Mapping, Sequence

import numpy as np

# distortion_model -> number of coefficients (sensor_msgs/distortion_models.hpp)
DISTORTION_SIZES = {"plumb_bob": 5, "rational_polynomial": 8, "equidistant": 4}
FISHEYE_MODELS = ("equidistant",)


class CalibrationError(ValueError):
    """A calibration, a camera model or its file is unusable; the message names the field or the problem."""


@dataclass(frozen=True)
class RegionOfInterest:
    """CameraInfo ``roi``: the sub-window of the full-resolution image (all zeros: the full image)."""

    x_offset: int = 0
    y_offset: int = 0
    height: int = 0
    width: int = 0
    do_rectify: bool = False


def as_matrix(value: Any, shape: tuple[int, ...], name: str, where: str = "") -> np.ndarray:
    """``value`` as a finite float64 array of ``shape`` (a flat list of the right length is reshaped)."""
    prefix = f"{where}: " if where else ""
    if value is None:
        raise CalibrationError(f"{prefix}{name}: expected numbers, got None")
    try:
        array = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise CalibrationError(f"{prefix}{name}: expected numbers, got {value!r} ({exc})") from None
    size = int(np.prod(shape))
    if array.size != size:
        raise CalibrationError(f"{prefix}{name}: expected {'x'.join(map(str, shape))} = {size} values, "
                               f"got {array.size} (shape {tuple(array.shape)})")
    if not np.all(np.isfinite(array)):
        bad = [i for i, v in enumerate(array.ravel()) if not np.isfinite(v)]
        raise CalibrationError(f"{prefix}{name}: values must be finite, got NaN/inf at flat index {bad}")
    return array.reshape(shape).copy()


def as_matrix_or_none(value: Any) -> np.ndarray | None:
    """``value`` as an array when numpy can make one (for its size), else None (then ``as_matrix`` says why)."""
    try:
        return np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError):
        return None


@dataclass(frozen=True, eq=False)
class CameraModel:
    """A calibrated camera. ``K``, ``R``: (3, 3); ``P``: (3, 4); ``D``: (n,) with n fixed by ``distortion_model``."""

    width: int
    height: int
    K: np.ndarray
    D: np.ndarray
    distortion_model: str = "plumb_bob"
    R: np.ndarray = field(default_factory=lambda: np.eye(3))
    P: np.ndarray | None = None  # None: [K | 0] (no rectification beyond undistortion)
    camera_name: str = "camera"
    binning_x: int = 0
    binning_y: int = 0
    roi: RegionOfInterest = field(default_factory=RegionOfInterest)

    def __post_init__(self) -> None:
        where = f"camera '{self.camera_name}'"
        for name in ("width", "height"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value <= 0:
                raise CalibrationError(f"{where}: {name}: expected a positive integer, got {value!r}")
            object.__setattr__(self, name, int(value))
        if self.distortion_model not in DISTORTION_SIZES:
            raise CalibrationError(f"{where}: distortion_model: expected one of {sorted(DISTORTION_SIZES)}, "
                                   f"got {self.distortion_model!r}")
        K = as_matrix(self.K, (3, 3), "camera_matrix (K)", where)
        if not (K[0, 0] > 0 and K[1, 1] > 0):
            raise CalibrationError(f"{where}: camera_matrix (K): fx and fy must be positive, got fx={K[0, 0]}, "
                                   f"fy={K[1, 1]} (an uncalibrated camera?)")
        if not np.array_equal(K[2], [0.0, 0.0, 1.0]):
            raise CalibrationError(f"{where}: camera_matrix (K): last row must be [0, 0, 1], got {K[2].tolist()}")
        D = as_matrix(self.D, (np.size(as_matrix_or_none(self.D)),), "distortion_coefficients (D)", where)
        expected = DISTORTION_SIZES[self.distortion_model]
        if D.size != expected:
            raise CalibrationError(f"{where}: distortion_coefficients (D): model '{self.distortion_model}' takes "
                                   f"{expected} coefficients, got {D.size}")
        R = as_matrix(self.R, (3, 3), "rectification_matrix (R)", where)
        P = np.hstack([K, np.zeros((3, 1))]) if self.P is None else as_matrix(self.P, (3, 4), "projection_matrix (P)",
                                                                             where)
        if not (P[0, 0] > 0 and P[1, 1] > 0):
            raise CalibrationError(f"{where}: projection_matrix (P): fx' and fy' must be positive, got "
                                   f"{P[0, 0]}, {P[1, 1]}")
        for name, value in (("K", K), ("D", D), ("R", R), ("P", P)):
            value.setflags(write=False)
            object.__setattr__(self, name, value)

    # -- views ------------------------------------------------------------------------------------------------------
    @property
    def size(self) -> tuple[int, int]:
        """``(width, height)``, OpenCV's image size order."""
        return self.width, self.height

    @property
    def is_fisheye(self) -> bool:
        return self.distortion_model in FISHEYE_MODELS

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, CameraModel):
            return NotImplemented
        return (self.size == other.size and self.distortion_model == other.distortion_model
                and self.camera_name == other.camera_name and self.binning_x == other.binning_x
                and self.binning_y == other.binning_y and self.roi == other.roi
                and all(np.array_equal(getattr(self, n), getattr(other, n)) for n in ("K", "D", "R", "P")))

    def replace(self, **changes: Any) -> "CameraModel":
        return dataclasses.replace(self, **changes)

    def for_resolution(self, width: int, height: int, tolerance: float = 0.01) -> "CameraModel":
        """``scaled`` to a stream of that size, refusing a different aspect ratio (a crop needs its own calibration)."""
        if abs((width / height) / (self.width / self.height) - 1.0) > tolerance:
            raise CalibrationError(f"image {width}x{height}: aspect ratio differs from the calibration's "
                                   f"{self.width}x{self.height} (camera '{self.camera_name}'); a cropped stream needs "
                                   "its own calibration")
        return self.scaled(width, height)

    def scaled(self, width: int, height: int) -> "CameraModel":
        """The same camera seen at ``width`` x ``height`` (a resized stream): K and P rows scale with the image.

        Uses the pixel-centre convention: a pixel coordinate u maps to (u + 0.5) * s - 0.5, so fx scales by s and
        cx by the same map. Assumes the whole field of view is resized (no crop).
        """
        if (width, height) == self.size:
            return self
        sx, sy = width / self.width, height / self.height
        scale = np.diag([sx, sy, 1.0])
        scale[0, 2], scale[1, 2] = 0.5 * sx - 0.5, 0.5 * sy - 0.5
        K = scale @ self.K
        P = scale @ self.P
        P[:, 3] = self.P[:, 3] * np.array([sx, sy, 1.0])  # the baseline term scales with the focal length only
        return self.replace(width=int(width), height=int(height), K=K, P=P)

    # -- CameraInfo as a plain dict ---------------------------------------------------------------------------------
    def to_camera_info(self) -> dict[str, Any]:
        """The fields of ``sensor_msgs/CameraInfo`` (no header) as plain Python values."""
        return {
            "width": self.width,
            "height": self.height,
            "distortion_model": self.distortion_model,
            "d": [float(v) for v in self.D],
            "k": [float(v) for v in self.K.ravel()],
            "r": [float(v) for v in self.R.ravel()],
            "p": [float(v) for v in self.P.ravel()],
            "binning_x": self.binning_x,
            "binning_y": self.binning_y,
            "roi": dataclasses.asdict(self.roi),
        }

    @classmethod
    def from_camera_info(cls, info: Mapping[str, Any], camera_name: str = "camera") -> "CameraModel":
        """Inverse of ``to_camera_info``; a missing or wrong field raises ``CalibrationError`` naming it."""
        missing = [k for k in ("width", "height", "distortion_model", "d", "k", "r", "p") if k not in info]
        if missing:
            raise CalibrationError(f"camera_info: missing fields {missing}")
        roi = info.get("roi") or {}
        try:
            region = RegionOfInterest(**{k: roi[k] for k in roi})
        except TypeError as exc:
            raise CalibrationError(f"camera_info: roi: {exc}") from None
        return cls(width=info["width"], height=info["height"], K=_sequence(info["k"]), D=_sequence(info["d"]),
                   distortion_model=info["distortion_model"], R=_sequence(info["r"]), P=_sequence(info["p"]),
                   camera_name=camera_name, binning_x=int(info.get("binning_x", 0)),
                   binning_y=int(info.get("binning_y", 0)), roi=region)


def _sequence(value: Sequence[float]) -> np.ndarray:
    return np.asarray(list(value), dtype=np.float64)
