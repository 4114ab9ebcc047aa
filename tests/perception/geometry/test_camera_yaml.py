"""camera_calibration YAML: exact round trips through CameraModel and CameraInfo, clear errors on bad files."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import yaml

from perception.geometry.camera_model import CalibrationError, CameraModel
from perception.geometry.camera_yaml import (dumps_camera_yaml, load_camera_yaml, loads_camera_yaml,
                                             model_to_dict, save_camera_yaml)

# as ROS camera_calibration writes it: full float64 precision, each value in its shortest round-tripping form
ROS_YAML = """\
image_width: 640
image_height: 480
camera_name: narrow_stereo
camera_matrix:
  rows: 3
  cols: 3
  data: [536.0653552712345, 0.0, 342.3704025712029, 0.0, 536.0081338849931, 235.53241772880426, 0.0, 0.0, 1.0]
distortion_model: plumb_bob
distortion_coefficients:
  rows: 1
  cols: 5
  data: [-0.2651168203811121, -0.04661697968431107, 0.0018319072549040345, -0.00031473224660930765, 0.25218382236024406]
rectification_matrix:
  rows: 3
  cols: 3
  data: [1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0]
projection_matrix:
  rows: 3
  cols: 4
  data: [446.8406066894531, 0.0, 347.9397239393531, 0.0, 0.0, 474.6358947753906, 238.31285679757363, 0.0, 0.0, 0.0, 1.0, 0.0]
"""


def test_yaml_to_model_to_camera_info_to_yaml_is_exact(tmp_path: Path):
    model = loads_camera_yaml(ROS_YAML)
    assert model.camera_name == "narrow_stereo" and model.size == (640, 480)
    assert model.K[0, 0] == 536.0653552712345 and model.D[4] == 0.25218382236024406
    info = model.to_camera_info()
    again = CameraModel.from_camera_info(info, camera_name=model.camera_name)
    assert dumps_camera_yaml(again) == ROS_YAML  # byte for byte, key order included
    save_camera_yaml(again, tmp_path / "cam.yaml")
    assert (tmp_path / "cam.yaml").read_text() == ROS_YAML
    assert load_camera_yaml(tmp_path / "cam.yaml") == model


def test_random_values_survive_the_round_trip_bit_for_bit():
    rng = np.random.default_rng(7)
    for _ in range(20):
        K = np.array([[rng.uniform(100, 2000), rng.normal() * 1e-3, rng.uniform(0, 640)],
                      [0.0, rng.uniform(100, 2000), rng.uniform(0, 480)], [0.0, 0.0, 1.0]])
        model = CameraModel(width=640, height=480, K=K, D=rng.normal(size=8) * 10.0 ** rng.integers(-9, 2, 8),
                            distortion_model="rational_polynomial", R=rng.normal(size=(3, 3)),
                            P=np.hstack([K, rng.normal(size=(3, 1)) * 1e-7]))
        back = loads_camera_yaml(dumps_camera_yaml(model))
        assert back == model


def test_opencv_style_column_vector_of_distortion_is_accepted():
    doc = yaml.safe_load(ROS_YAML)
    doc["distortion_coefficients"].update(rows=5, cols=1)
    assert np.array_equal(loads_camera_yaml(yaml.safe_dump(doc)).D, loads_camera_yaml(ROS_YAML).D)


def test_projection_and_rectification_default_when_absent():
    doc = yaml.safe_load(ROS_YAML)
    del doc["projection_matrix"], doc["rectification_matrix"]
    model = loads_camera_yaml(yaml.safe_dump(doc))
    assert np.array_equal(model.R, np.eye(3)) and np.array_equal(model.P[:, :3], model.K)


def _broken(edit) -> str:
    doc = yaml.safe_load(ROS_YAML)
    edit(doc)
    return yaml.safe_dump(doc)


@pytest.mark.parametrize("text, words", [
    ("image_width: [640\n", ["cam.yaml", "not valid YAML"]),
    ("- just\n- a list\n", ["cam.yaml", "expected a mapping", "list"]),
    (_broken(lambda d: d.pop("camera_matrix")), ["cam.yaml", "missing fields ['camera_matrix']"]),
    (_broken(lambda d: d["camera_matrix"].update(rows=2, cols=3, data=[1.0] * 6)),
     ["cam.yaml", "camera_matrix", "expected 3 x 3, got 2 x 3"]),
    (_broken(lambda d: d["camera_matrix"].update(data=[1.0] * 8)),
     ["cam.yaml", "camera_matrix", "3 x 3 does not match the 8 values"]),
    (_broken(lambda d: d["projection_matrix"].update(rows=3, cols=3, data=[1.0] * 9)),
     ["projection_matrix", "expected 3 x 4, got 3 x 3"]),
    (_broken(lambda d: d["distortion_coefficients"].update(cols=4, data=[0.1] * 4)),
     ["distortion_coefficients (D)", "plumb_bob", "5 coefficients, got 4"]),
    (ROS_YAML.replace("-0.2651168203811121", ".nan"), ["cam.yaml", "distortion_coefficients (D)", "finite"]),
    (ROS_YAML.replace("536.0653552712345", ".inf"), ["cam.yaml", "camera_matrix (K)", "finite", "index [0]"]),
    (ROS_YAML.replace("536.0653552712345", "fast"), ["camera_matrix.data[0]", "expected a number", "'fast'"]),
    (ROS_YAML.replace("image_width: 640", "image_width: -640"), ["cam.yaml", "width", "-640"]),
    (ROS_YAML.replace("plumb_bob", "brown_conrady"), ["distortion_model", "brown_conrady"]),
])
def test_bad_files_name_the_file_and_the_problem(tmp_path: Path, text: str, words: list[str]):
    path = tmp_path / "cam.yaml"
    path.write_text(text)
    with pytest.raises(CalibrationError) as err:
        load_camera_yaml(path)
    for word in words:
        assert word in str(err.value), (word, str(err.value))


def test_missing_and_binary_files(tmp_path: Path):
    with pytest.raises(FileNotFoundError):
        load_camera_yaml(tmp_path / "absent.yaml")
    (tmp_path / "bin.yaml").write_bytes(b"\xff\xfe\x00garbage")
    with pytest.raises(CalibrationError, match="bin.yaml"):
        load_camera_yaml(tmp_path / "bin.yaml")


def test_written_document_has_the_ros_fields_in_order():
    doc = model_to_dict(loads_camera_yaml(ROS_YAML))
    assert list(doc) == ["image_width", "image_height", "camera_name", "camera_matrix", "distortion_model",
                         "distortion_coefficients", "rectification_matrix", "projection_matrix"]
    assert doc["distortion_coefficients"]["rows"] == 1 and doc["distortion_coefficients"]["cols"] == 5


def test_shipped_calibration_files_load_and_round_trip():
    folder = Path(__file__).resolve().parents[3] / "calibration"
    files = sorted(folder.glob("*.yaml"))
    assert files, folder
    for path in files:
        model = load_camera_yaml(path)
        assert model.camera_name == path.stem
        assert dumps_camera_yaml(model) == path.read_text()
