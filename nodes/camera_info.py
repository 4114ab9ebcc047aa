"""sensor_msgs/CameraInfo to and from the core's ``CameraModel``, ``camera_info_url`` resolution, and the
``CameraInfoManager`` a camera node publishes from and ``~/set_camera_info`` writes to.

URLs follow ROS camera_info_manager: ``file:///abs/path.yaml``, ``package://PKG/rel/path.yaml`` (the package's share
directory: ament_index when a ROS installation provides it, else ``<prefix>/share/PKG`` of a pip install, else the
source checkout of this package), or a plain path. The field work lives in ``perception.geometry`` (ROS-free); this
module only moves fields.
"""

from __future__ import annotations

import sys
from pathlib import Path
from urllib.parse import unquote, urlparse

from sensor_msgs.msg import CameraInfo, RegionOfInterest
from std_msgs.msg import Header

from perception.geometry.camera_model import CalibrationError, CameraModel
from perception.geometry.camera_yaml import load_camera_yaml, save_camera_yaml

PACKAGE = "dualstream_perception"


def camera_info_fields_to_msg(fields: dict, header: Header) -> CameraInfo:
    """``CameraModel.to_camera_info()`` dict -> CameraInfo with ``header``."""
    msg = CameraInfo(header=header, width=fields["width"], height=fields["height"],
                     distortion_model=fields["distortion_model"], binning_x=fields["binning_x"],
                     binning_y=fields["binning_y"], roi=RegionOfInterest(**fields["roi"]))
    msg.d, msg.k, msg.r, msg.p = fields["d"], fields["k"], fields["r"], fields["p"]
    return msg


def camera_info_to_msg(model: CameraModel, header: Header) -> CameraInfo:
    return camera_info_fields_to_msg(model.to_camera_info(), header)


def msg_to_camera_info_fields(msg: CameraInfo) -> dict:
    """CameraInfo (no header) -> the plain dict of ``CameraModel.to_camera_info``."""
    roi = msg.roi
    return {
        "width": int(msg.width), "height": int(msg.height), "distortion_model": msg.distortion_model,
        "d": [float(v) for v in msg.d], "k": [float(v) for v in msg.k], "r": [float(v) for v in msg.r],
        "p": [float(v) for v in msg.p], "binning_x": int(msg.binning_x), "binning_y": int(msg.binning_y),
        "roi": {"x_offset": int(roi.x_offset), "y_offset": int(roi.y_offset), "height": int(roi.height),
                "width": int(roi.width), "do_rectify": bool(roi.do_rectify)},
    }


def msg_to_camera_model(msg: CameraInfo, camera_name: str = "camera") -> CameraModel:
    """CameraInfo -> ``CameraModel``; ``CalibrationError`` names a bad field (an uncalibrated all-zero K, say)."""
    return CameraModel.from_camera_info(msg_to_camera_info_fields(msg), camera_name=camera_name)


def package_share_directory(package: str) -> Path:
    """The share directory of ``package``: ament_index, else ``<prefix>/share/<package>``, else (this package only)
    the source checkout holding ``package.xml``."""
    try:
        from ament_index_python.packages import get_package_share_directory  # noqa: PLC0415

        return Path(get_package_share_directory(package))
    except (ImportError, LookupError, OSError, ValueError):
        pass
    installed = Path(sys.prefix) / "share" / package
    if installed.is_dir():
        return installed
    checkout = Path(__file__).resolve().parents[1]
    if package == PACKAGE and (checkout / "package.xml").is_file():
        return checkout
    raise CalibrationError(f"package://{package}: package not found (no ament index entry, no {installed})")


def resolve_camera_info_url(url: str) -> Path:
    """``file://``, ``package://`` or a plain path -> the calibration file's path (which may not exist yet)."""
    parsed = urlparse(url)
    if parsed.scheme == "file":
        return Path(unquote(parsed.netloc + parsed.path))
    if parsed.scheme == "package":
        if not parsed.netloc or not parsed.path.strip("/"):
            raise CalibrationError(f"camera_info_url '{url}': expected package://PACKAGE/path/to/file.yaml")
        return package_share_directory(parsed.netloc) / unquote(parsed.path.lstrip("/"))
    if parsed.scheme == "":
        return Path(url)
    raise CalibrationError(f"camera_info_url '{url}': unsupported scheme '{parsed.scheme}' (file:// or package://)")


class CameraInfoManager:
    """The calibration a camera node publishes, from ``camera_info_url``, and the ``set_camera_info`` store.

    Like ROS camera_info_manager: a missing file gives an uncalibrated camera_info (only width and height) with a
    warning; a stream whose resolution differs from the calibration gets the model scaled to it (same aspect ratio).
    ``set`` validates the new calibration, writes the YAML atomically and publishes it from the next frame on.
    Messages' fields are cached per resolution; the cache is swapped whole, so the publishing thread needs no lock.
    """

    def __init__(self, url: str, logger, camera_name: str = "camera") -> None:
        self.url = url
        self.logger = logger
        self.problem = "camera_info_url is not set: nowhere to store the calibration"
        try:
            self.path = resolve_camera_info_url(url) if url else None
        except CalibrationError as exc:  # the node stays up, uncalibrated, and says why
            self.path, self.problem = None, str(exc)
            logger.error(f"{exc}; publishing an uncalibrated camera_info")
        self.camera_name = self.path.stem if self.path is not None else camera_name
        self._state: tuple[CameraModel | None, dict] = (self._load(), {})

    @property
    def model(self) -> CameraModel | None:
        return self._state[0]

    def _load(self) -> CameraModel | None:
        if self.path is None:
            return None
        if not self.path.is_file():
            self.logger.warning(f"camera_info_url {self.url}: no calibration at {self.path}; publishing an "
                                "uncalibrated camera_info until ~/set_camera_info stores one")
            return None
        try:
            model = load_camera_yaml(self.path)
        except CalibrationError as exc:
            self.logger.error(f"camera_info_url {self.url}: {exc}; publishing an uncalibrated camera_info")
            return None
        self.camera_name = model.camera_name
        self.logger.info(f"camera_info from {self.path} ({model.width}x{model.height}, {model.distortion_model})")
        return model

    def message(self, header: Header, width: int, height: int) -> CameraInfo:
        model, cache = self._state
        key = (int(width), int(height))
        if key not in cache:
            cache[key] = None
            if model is not None:
                try:
                    cache[key] = model.for_resolution(*key).to_camera_info()
                except CalibrationError as exc:
                    self.logger.error(f"{exc}; publishing an uncalibrated camera_info at {width}x{height}")
        fields = cache[key]
        if fields is None:
            return CameraInfo(header=header, width=key[0], height=key[1])
        return camera_info_fields_to_msg(fields, header)

    def set(self, msg: CameraInfo) -> tuple[bool, str]:
        """Store a new calibration; ``(success, status_message)`` as SetCameraInfo answers."""
        if self.path is None:
            return False, self.problem
        try:
            model = msg_to_camera_model(msg, camera_name=self.camera_name)
            save_camera_yaml(model, self.path)
        except CalibrationError as exc:
            return False, f"refused: {exc}"
        except OSError as exc:
            return False, f"cannot write {self.path}: {exc}"
        self._state = (model, {})
        self.logger.info(f"new calibration stored in {self.path}")
        return True, f"stored in {self.path}"
