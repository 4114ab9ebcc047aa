"""camera_info: exact conversions, camera_info_url resolution, camera_node publishing and storing a calibration
(~/set_camera_info), perception_node rectifying with the camera_info it receives."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest
import rclpy.node
from rclpy.parameter import Parameter
from sensor_msgs.msg import CameraInfo, Image
from sensor_msgs.srv import SetCameraInfo
from std_msgs.msg import Header

from dualstream_perception.camera_info import (CameraInfoManager, camera_info_to_msg, msg_to_camera_model,
                                               resolve_camera_info_url)
from dualstream_perception.camera_node import CameraNode
from dualstream_perception.conversions import image_to_rgb, rgb_to_image
from dualstream_perception.perception_node import PerceptionNode
from dualstream_perception.qos import image_qos
from perception.geometry.camera_model import CalibrationError
from perception.geometry.camera_yaml import dumps_camera_yaml, load_camera_yaml
from perception.geometry.rectify import Rectifier

REPO = Path(__file__).resolve().parents[2]
SAMPLE = REPO / "calibration" / "opencv_sample_left.yaml"


class Log:
    """Collects what a CameraInfoManager logs (it takes any object with info/warning/error)."""

    def __init__(self) -> None:
        self.lines: list[tuple[str, str]] = []

    def info(self, text: str) -> None:
        self.lines.append(("info", text))

    def warning(self, text: str) -> None:
        self.lines.append(("warning", text))

    def error(self, text: str) -> None:
        self.lines.append(("error", text))


# -- conversions and URLs (no DDS) ------------------------------------------------------------------------------
def test_yaml_to_msg_to_yaml_is_exact():
    model = load_camera_yaml(SAMPLE)
    msg = camera_info_to_msg(model, Header(frame_id="cam"))
    assert msg.width == 640 and msg.height == 480 and msg.distortion_model == "plumb_bob"
    assert list(msg.k) == model.K.ravel().tolist() and list(msg.d) == model.D.tolist()
    back = msg_to_camera_model(msg, camera_name=model.camera_name)
    assert back == model
    assert dumps_camera_yaml(back) == SAMPLE.read_text()


def test_an_uncalibrated_msg_is_refused_by_name():
    with pytest.raises(CalibrationError, match="uncalibrated"):
        msg_to_camera_model(CameraInfo(width=640, height=480, distortion_model="plumb_bob", d=[0.0] * 5))


def test_urls_resolve(tmp_path: Path):
    assert resolve_camera_info_url(f"file://{tmp_path}/a b.yaml") == tmp_path / "a b.yaml"
    assert resolve_camera_info_url(f"file://{tmp_path}/a%20b.yaml") == tmp_path / "a b.yaml"
    assert resolve_camera_info_url(str(tmp_path / "c.yaml")) == tmp_path / "c.yaml"
    shipped = resolve_camera_info_url("package://dualstream_perception/calibration/opencv_sample_left.yaml")
    assert shipped.is_file() and load_camera_yaml(shipped) == load_camera_yaml(SAMPLE)
    with pytest.raises(CalibrationError, match="unsupported scheme 'http'"):
        resolve_camera_info_url("http://example.com/cam.yaml")
    with pytest.raises(CalibrationError, match="package://no_such_package_xyz: package not found"):
        resolve_camera_info_url("package://no_such_package_xyz/cam.yaml")


def test_manager_scales_to_the_stream_and_survives_bad_files(tmp_path: Path):
    log = Log()
    manager = CameraInfoManager(f"file://{SAMPLE}", log)
    info = manager.message(Header(), 320, 240)
    model = load_camera_yaml(SAMPLE)
    assert info.width == 320 and info.k[0] == pytest.approx(model.K[0, 0] / 2)
    assert manager.message(Header(), 640, 360).k[0] == 0.0  # a crop: uncalibrated, with an error naming it
    assert any(level == "error" and "640x360: aspect ratio" in text for level, text in log.lines)
    (tmp_path / "bad.yaml").write_text("image_width: 640\n")
    bad = CameraInfoManager(str(tmp_path / "bad.yaml"), log)
    assert bad.model is None and bad.message(Header(), 640, 480).k[0] == 0.0
    assert any(level == "error" and "missing fields" in text for level, text in log.lines)
    absent = CameraInfoManager(str(tmp_path / "new.yaml"), log)
    assert absent.model is None and absent.camera_name == "new"
    ok, message = absent.set(camera_info_to_msg(model, Header()))
    assert ok and (tmp_path / "new.yaml").is_file(), message
    assert load_camera_yaml(tmp_path / "new.yaml") == model.replace(camera_name="new")
    ok, message = CameraInfoManager("", log).set(camera_info_to_msg(model, Header()))
    assert not ok and "camera_info_url is not set" in message


# -- camera_node over DDS -----------------------------------------------------------------------------------------
def _camera(ros, **params) -> CameraNode:
    overrides = [Parameter(k, value=v) for k, v in {
        "source.uri": "synthetic", "source.width": 320, "source.height": 240, "source.num_frames": 100000,
        "source.rate_hz": 20.0, "qos.reliability": "reliable", "qos.depth": 10, **params}.items()]
    return ros.add(CameraNode(context=ros.context, parameter_overrides=overrides))


@pytest.mark.ros
def test_camera_node_publishes_and_stores_its_calibration(ros, wait_for, tmp_path: Path):
    path = tmp_path / "front.yaml"
    shutil.copy(SAMPLE, path)
    camera = _camera(ros, camera_info_url=f"file://{path}")
    probe = ros.add(rclpy.node.Node("probe", context=ros.context))
    infos: list[CameraInfo] = []
    probe.create_subscription(CameraInfo, "camera_info", infos.append, image_qos("reliable", 10))
    assert wait_for(lambda: len(infos) >= 2, timeout=10.0)
    sample = load_camera_yaml(SAMPLE)
    scaled = sample.scaled(320, 240)  # the 640x480 calibration, scaled to the 320x240 stream
    assert infos[-1].width == 320 and np.allclose(infos[-1].k, scaled.K.ravel(), rtol=0, atol=1e-9)
    assert list(infos[-1].d) == sample.D.tolist() and infos[-1].distortion_model == "plumb_bob"

    client = probe.create_client(SetCameraInfo, "/camera_node/set_camera_info")
    assert client.wait_for_service(timeout_sec=5.0)
    new = sample.replace(K=sample.K * [[1.1], [1.1], [1.0]], P=sample.P * [[1.1], [1.1], [1.0]])
    request = SetCameraInfo.Request(camera_info=camera_info_to_msg(new, Header()))
    response = client.call(request, timeout_sec=5.0)
    assert response.success, response.status_message
    assert load_camera_yaml(path) == new.replace(camera_name=sample.camera_name)  # written to the file
    assert not list(tmp_path.glob(".front.yaml.*"))  # atomic write: no temporary left behind
    infos.clear()
    assert wait_for(lambda: len(infos) >= 2, timeout=5.0)
    assert infos[-1].k[0] == pytest.approx(new.scaled(320, 240).K[0, 0])

    bad = camera_info_to_msg(sample, Header())
    bad.k[0] = float("nan")
    response = client.call(SetCameraInfo.Request(camera_info=bad), timeout_sec=5.0)
    assert not response.success and "camera_matrix (K)" in response.status_message
    assert "finite" in response.status_message
    assert load_camera_yaml(path).K[0, 0] == pytest.approx(new.K[0, 0])  # the file is unchanged
    assert camera.published > 0


# -- perception_node rectifying ------------------------------------------------------------------------------------
def _distorted_board_rgb() -> np.ndarray:
    """A 320x240 checkerboard-like picture; the sample lens distorts it strongly, so rectification changes it."""
    yy, xx = np.mgrid[0:240, 0:320]
    board = (((xx // 20) + (yy // 20)) % 2 * 200 + 30).astype(np.uint8)
    return np.dstack([board, np.roll(board, 7, axis=1), 255 - board])


@pytest.mark.ros
def test_perception_node_rectifies_with_the_latest_camera_info(ros, wait_for):
    overrides = [Parameter(k, value=v) for k, v in {
        "encoder.name": "dualstream_tiny", "qos.reliability": "reliable", "qos.depth": 10,
        "rectify": True, "runtime.publish_debug": True, "diagnostics_period_s": 0.2}.items()]
    node = ros.add(PerceptionNode(context=ros.context, parameter_overrides=overrides))
    probe = ros.add(rclpy.node.Node("probe", context=ros.context))
    qos = image_qos("reliable", 10)
    image_pub = probe.create_publisher(Image, "image", qos)
    info_pub = probe.create_publisher(CameraInfo, "camera_info", qos)
    debug: list[Image] = []
    probe.create_subscription(Image, "debug/image", debug.append, qos)
    assert wait_for(lambda: image_pub.get_subscription_count() and info_pub.get_subscription_count(), timeout=10.0)
    raw = _distorted_board_rgb()
    header = Header(frame_id="cam")

    image_pub.publish(rgb_to_image(raw, header))  # no camera_info yet: skipped and counted, not processed raw
    assert wait_for(lambda: node.bad["not_rectified"] == 1, timeout=10.0)
    assert node.processing.count == 0 and "no camera_info received yet" in node.last_problem

    model = load_camera_yaml(SAMPLE)
    info_pub.publish(camera_info_to_msg(model.scaled(320, 240), header))
    assert wait_for(lambda: node.calibration.rectifier is not None, timeout=10.0)
    image_pub.publish(rgb_to_image(raw, header))
    assert wait_for(lambda: len(debug) >= 1, timeout=30.0)
    overlay = image_to_rgb(debug[-1]).astype(np.int16)
    expected = Rectifier(model).rectify(raw).astype(np.int16)  # the full-size calibration, scaled by the rectifier
    # the overlay is the rectified picture (boxes drawn on top may differ in a few pixels)
    differs_from_rectified = np.mean(np.abs(overlay - expected) > 8)
    differs_from_raw = np.mean(np.abs(overlay - raw.astype(np.int16)) > 8)
    assert differs_from_rectified < 0.05 and differs_from_raw > 0.15, (differs_from_rectified, differs_from_raw)


# -- dualstream calibrate --topic (live) ---------------------------------------------------------------------------
@pytest.mark.ros
def test_calibrate_reads_a_live_topic(ros, wait_for, tmp_path: Path, monkeypatch):
    from perception.cli import main

    folder = tmp_path / "boards"
    folder.mkdir()
    K = np.array([[420.0, 0.0, 322.5], [0.0, 418.0, 236.0], [0.0, 0.0, 1.0]])
    D = np.array([-0.32, 0.11, 0.0008, -0.0005, -0.015])
    rng = np.random.default_rng(0)
    for k in range(8):  # boards drawn as filled squares at projected positions (an exact picture is not needed)
        rvec = rng.uniform(-0.4, 0.4, 3) * [1, 1, 0.5]
        tvec = np.array([rng.uniform(-0.15, 0.0), rng.uniform(-0.1, 0.0), rng.uniform(0.3, 0.42)])
        image = np.full((480, 640), 128, np.uint8)
        squares = [(i, j) for j in range(-1, 6) for i in range(-1, 9) if (i + j) % 2 == 0]
        margin = np.array([[-0.05, -0.05, 0], [0.25, -0.05, 0], [0.25, 0.175, 0], [-0.05, 0.175, 0]])
        pts, _ = cv2.projectPoints(margin, rvec, tvec, K, D)
        cv2.fillConvexPoly(image, pts.reshape(-1, 2).round().astype(np.int32), 255)
        for i, j in squares:
            quad = np.array([[i, j, 0], [i + 1, j, 0], [i + 1, j + 1, 0], [i, j + 1, 0]], np.float64) * 0.025
            pts, _ = cv2.projectPoints(quad, rvec, tvec, K, D)
            cv2.fillConvexPoly(image, (pts.reshape(-1, 2) * 16).round().astype(np.int32), 0, cv2.LINE_AA, 4)
        cv2.imwrite(str(folder / f"b{k}.png"), image)
    _camera(ros, **{"source.uri": str(folder), "source.loop": True, "source.rate_hz": 10.0,
                    "source.width": 640, "source.height": 480, "qos.reliability": "best_effort"})
    monkeypatch.setenv("ROS_DOMAIN_ID", str(ros.domain_id))
    rc = main(["calibrate", "--topic", "/image_raw", "--duration", "4", "--every", "1", "--out",
               str(tmp_path / "live.yaml"), "--report-dir", str(tmp_path / "r")])
    assert rc == 0
    model = load_camera_yaml(tmp_path / "live.yaml")
    assert model.size == (640, 480) and model.K[0, 0] == pytest.approx(420.0, rel=0.03)
    result = json.loads((tmp_path / "r" / "result.json").read_text())
    assert len(result["views_used"]) == 8  # the looping folder repeats its 8 boards: repeats are near-duplicates
    assert result["boards_found"] > 8 and set(result["rejected"].values()) <= {
        f"near-duplicate of {name}" for name in result["views_used"]}
