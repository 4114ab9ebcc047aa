"""CameraSource: device parsing, clear errors without a camera, and reconnect with backoff.

There is no camera on the test machines; reconnection is exercised on a real ``cv2.VideoCapture`` reading a
short video file, which runs dry after its last frame exactly as an unplugged camera stops delivering.
"""

from __future__ import annotations

import itertools
import time

import cv2
import numpy as np
import pytest

from perception.io.camera import CameraSource, parse_device
from perception.io.frame import SourceError


@pytest.mark.parametrize("given,expected", [(0, 0), ("2", 2), ("camera:3", 3), ("/dev/video7", "/dev/video7")])
def test_parse_device(given, expected):
    assert parse_device(given) == expected


def test_parse_device_rejects_other_text():
    with pytest.raises(SourceError, match="expected an index"):
        parse_device("front")


def test_missing_device_path_is_a_clear_error():
    started = time.monotonic()
    with pytest.raises(SourceError, match=r"/dev/video97 does not exist"):
        CameraSource("/dev/video97")
    assert time.monotonic() - started < 2.0


def test_missing_device_index_is_a_clear_error():
    with pytest.raises(SourceError, match=r"camera:61: .*/dev/video61"):
        CameraSource(61)


def test_reconnects_when_reads_fail_and_stamps_with_the_wall_clock(make_clip, clip_colour):
    clip = str(make_clip(n=8))
    source = CameraSource(0, reconnect_attempts=2, backoff_s=0.01, capture_factory=lambda: cv2.VideoCapture(clip),
                          frame_id="front_optical_frame")
    assert source.size == (64, 48)
    before = time.time_ns()
    frames = list(itertools.islice(source, 20))  # 8 frames per "connection": at least two reconnects
    after = time.time_ns()
    source.close()
    assert [f.seq for f in frames] == list(range(20))
    assert source.reconnects == 2
    stamps = [f.stamp_ns for f in frames]
    assert before <= stamps[0] and stamps[-1] <= after and stamps == sorted(stamps)
    for k, frame in enumerate(frames):  # frames resume from the start of each reconnection
        assert int(np.abs(frame.image.astype(int) - clip_colour(k % 8)).max()) <= 12
    assert frames[0].frame_id == "front_optical_frame"


def test_gives_up_after_the_configured_attempts_with_backoff(make_clip):
    clip = str(make_clip(n=3))
    opened = []

    def factory():
        opened.append(time.monotonic())
        return cv2.VideoCapture(clip if len(opened) == 1 else clip + ".gone")

    source = CameraSource(0, reconnect_attempts=3, backoff_s=0.02, capture_factory=factory)
    with pytest.raises(SourceError, match="3 reconnect attempts failed"):
        for _ in source:
            pass
    assert len(opened) == 4  # the first open, then three attempts
    gaps = np.diff(opened[1:])
    assert gaps[0] >= 0.035 and gaps[1] >= 0.075  # 0.02, 0.04, 0.08 s: the delay doubles


def test_device_that_does_not_open_is_an_error(tmp_path):
    with pytest.raises(SourceError, match="cannot open the camera"):
        CameraSource(0, capture_factory=lambda: cv2.VideoCapture(str(tmp_path / "none.mp4")))
