"""CameraModel: validation names the bad field; CameraInfo dict round trip; scaling to another resolution."""

from __future__ import annotations

import math

import numpy as np
import pytest

from perception.geometry.camera_model import CalibrationError, CameraModel, RegionOfInterest

K = np.array([[536.07, 0.0, 342.37], [0.0, 536.01, 235.53], [0.0, 0.0, 1.0]])
D = np.array([-0.265, -0.0466, 0.00183, -0.000315, 0.252])


def _model(**changes) -> CameraModel:
    fields = dict(width=640, height=480, K=K, D=D, camera_name="left")
    fields.update(changes)
    return CameraModel(**fields)


def test_defaults_fill_r_and_p():
    cam = _model()
    assert np.array_equal(cam.R, np.eye(3))
    assert np.array_equal(cam.P, np.hstack([K, np.zeros((3, 1))]))
    assert cam.size == (640, 480) and not cam.is_fisheye
    with pytest.raises(ValueError):
        cam.K[0, 0] = 1.0  # read-only arrays: a model cannot change under a cached rectifier


@pytest.mark.parametrize("changes, words", [
    (dict(K=np.eye(4)), ["camera_matrix (K)", "3x3 = 9", "got 16"]),
    (dict(K=K[:2]), ["camera_matrix (K)", "got 6"]),
    (dict(D=D[:4]), ["distortion_coefficients (D)", "plumb_bob", "5 coefficients, got 4"]),
    (dict(D=np.zeros(5), distortion_model="equidistant"), ["equidistant", "4 coefficients, got 5"]),
    (dict(P=np.zeros((3, 3))), ["projection_matrix (P)", "3x4 = 12", "got 9"]),
    (dict(R=np.eye(3)[:2]), ["rectification_matrix (R)", "got 6"]),
    (dict(distortion_model="brown"), ["distortion_model", "'brown'", "plumb_bob"]),
    (dict(width=0), ["width", "positive integer", "0"]),
    (dict(height=480.5), ["height", "480.5"]),
    (dict(K=np.zeros((3, 3))), ["fx and fy must be positive", "uncalibrated"]),
    (dict(K=np.array([[500.0, 0, 320], [0, 500, 240], [0, 0, 2]])), ["last row", "[0.0, 0.0, 2.0]"]),
    (dict(D=np.array(["a", 0, 0, 0, 0])), ["distortion_coefficients (D)", "expected numbers"]),
])
def test_bad_fields_are_named(changes, words):
    with pytest.raises(CalibrationError) as err:
        _model(**changes)
    for word in words:
        assert word in str(err.value), (word, str(err.value))
    assert "camera 'left'" in str(err.value)


@pytest.mark.parametrize("field", ["K", "D", "R", "P"])
def test_nan_and_inf_are_refused_with_their_position(field):
    value = np.array(getattr(_model(), field), dtype=np.float64)
    value.ravel()[1] = math.nan
    with pytest.raises(CalibrationError, match=r"finite.*index \[1\]"):
        _model(**{field: value})
    value.ravel()[1] = math.inf
    with pytest.raises(CalibrationError, match="finite"):
        _model(**{field: value})


def test_camera_info_dict_round_trip_is_exact():
    cam = _model(binning_x=2, binning_y=2, roi=RegionOfInterest(4, 8, 240, 320, True),
                 P=np.array([[480.1, 0, 330.2, 0], [0, 500.3, 240.4, 0], [0, 0, 1, 0]]))
    info = cam.to_camera_info()
    assert set(info) == {"width", "height", "distortion_model", "d", "k", "r", "p", "binning_x", "binning_y", "roi"}
    assert info["k"] == K.ravel().tolist() and info["d"] == D.tolist() and len(info["p"]) == 12
    assert info["roi"] == {"x_offset": 4, "y_offset": 8, "height": 240, "width": 320, "do_rectify": True}
    assert all(type(v) is float for v in info["k"] + info["d"] + info["r"] + info["p"])
    assert CameraModel.from_camera_info(info, camera_name="left") == cam


def test_camera_info_with_missing_fields_or_uncalibrated_values_is_refused():
    info = _model().to_camera_info()
    del info["k"]
    with pytest.raises(CalibrationError, match=r"missing fields \['k'\]"):
        CameraModel.from_camera_info(info)
    blank = {"width": 640, "height": 480, "distortion_model": "plumb_bob", "d": [], "k": [0.0] * 9,
             "r": [0.0] * 9, "p": [0.0] * 12}  # what an uncalibrated driver publishes
    with pytest.raises(CalibrationError, match="uncalibrated"):
        CameraModel.from_camera_info(blank)


def test_scaling_follows_pixel_centres_and_inverts():
    cam = _model()
    half = cam.scaled(320, 240)
    assert half.size == (320, 240)
    assert half.K[0, 0] == pytest.approx(K[0, 0] / 2) and half.K[1, 1] == pytest.approx(K[1, 1] / 2)
    # pixel centre convention: u -> (u + 0.5) / 2 - 0.5
    assert half.K[0, 2] == pytest.approx((K[0, 2] + 0.5) / 2 - 0.5)
    assert half.K[1, 2] == pytest.approx((K[1, 2] + 0.5) / 2 - 0.5)
    assert np.array_equal(half.D, cam.D) and np.array_equal(half.R, cam.R)
    back = half.scaled(640, 480)
    assert np.allclose(back.K, cam.K, atol=1e-9) and np.allclose(back.P, cam.P, atol=1e-9)
    assert cam.scaled(640, 480) is cam
