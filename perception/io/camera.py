"""A local camera (V4L2 device or OpenCV index) as a ``FrameSource``, with reconnect and exponential backoff.

Frames are stamped with the wall clock (``time.time_ns()``) right after ``VideoCapture.read`` returns, the same
convention as ROS camera drivers that lack hardware timestamps. A failed read closes the device and reopens it after
``backoff_s * 2**k`` seconds (k = 0, 1, ...) up to ``reconnect_attempts`` times in a row; then ``SourceError``.
While it is down, ``status()`` says so (``state``: ``streaming`` | ``reconnecting`` | ``failed`` | ``closed``, since
when, which attempt, the next delay), so a node can publish a diagnostic during the outage, not only after it.
"""

from __future__ import annotations

import logging
import os
import re
import sys
import time
from typing import Any, Callable, Iterator

import cv2
import numpy as np

from perception.io.frame import Frame, SourceError

log = logging.getLogger(__name__)

CaptureFactory = Callable[[], Any]  # returns an object with cv2.VideoCapture's isOpened/read/get/set/release


def parse_device(device: int | str) -> int | str:
    """``0``, ``"0"``, ``"camera:0"`` -> ``0``; ``"/dev/video2"`` stays a path. Anything else: ``SourceError``."""
    if isinstance(device, int):
        return device
    text = str(device).strip()
    if text.startswith("camera:"):
        text = text[len("camera:"):]
    if re.fullmatch(r"\d+", text):
        return int(text)
    if text.startswith("/dev/"):
        return text
    raise SourceError(f"camera device '{device}': expected an index (0, 'camera:0') or a path like /dev/video0")


class CameraSource:
    """Frames from a camera as ``(H, W, 3)`` uint8 RGB with wall-clock stamps.

    ``width``/``height``/``fps`` are requested from the driver when given (the driver may pick the nearest mode;
    ``size`` and ``fps`` report what it chose). ``capture_factory`` replaces the default ``cv2.VideoCapture(device)``
    (for a GStreamer pipeline, say). ``reconnects`` counts successful reopenings.
    """

    live = True  # frames arrive in real time: pacing must not delay them (perception.io.pacing)

    def __init__(self, device: int | str = 0, width: int | None = None, height: int | None = None,
                 fps: float | None = None, reconnect_attempts: int = 3, backoff_s: float = 0.5,
                 frame_id: str = "camera_optical_frame", capture_factory: CaptureFactory | None = None,
                 name: str | None = None) -> None:
        self.device = parse_device(device)
        self.frame_id = frame_id
        self.reconnect_attempts = max(0, int(reconnect_attempts))
        self.backoff_s = float(backoff_s)
        self.name = name or f"camera:{self.device}"
        self._request = (width, height, fps)
        self._factory = capture_factory or self._default_factory
        self.reconnects = 0
        self.state = "streaming"
        self.down_since: float | None = None  # time.monotonic() of the failed read that started the outage
        self.attempt = 0
        self.next_delay_s = 0.0
        self._closed = False
        node = self.device if isinstance(self.device, str) else f"/dev/video{self.device}"
        if capture_factory is None and sys.platform.startswith("linux") and not os.path.exists(node):
            raise SourceError(f"{self.name}: device {node} does not exist (is the camera plugged in?)")
        self._cap = self._open()
        if self._cap is None:
            raise SourceError(f"{self.name}: cannot open the camera (no such device, or it is busy or not permitted)")
        self.size: tuple[int, int] | None = None
        self.fps: float | None = None
        self._read_properties()

    def _default_factory(self) -> Any:
        return cv2.VideoCapture(self.device)

    def _open(self) -> Any | None:
        cap = self._factory()
        if cap is None or not cap.isOpened():
            if cap is not None:
                cap.release()
            return None
        width, height, fps = self._request
        if width:
            cap.set(cv2.CAP_PROP_FRAME_WIDTH, float(width))
        if height:
            cap.set(cv2.CAP_PROP_FRAME_HEIGHT, float(height))
        if fps:
            cap.set(cv2.CAP_PROP_FPS, float(fps))
        return cap

    def _read_properties(self) -> None:
        w = int(self._cap.get(cv2.CAP_PROP_FRAME_WIDTH))
        h = int(self._cap.get(cv2.CAP_PROP_FRAME_HEIGHT))
        fps = float(self._cap.get(cv2.CAP_PROP_FPS))
        self.size = (w, h) if w > 0 and h > 0 else None
        self.fps = fps if fps > 0 else None

    def _reconnect(self) -> None:
        """Reopen the device with exponential backoff; ``SourceError`` when every attempt fails."""
        if self._cap is not None:
            self._cap.release()
            self._cap = None
        self.state = "reconnecting"
        if self.down_since is None:
            self.down_since = time.monotonic()
        for attempt in range(self.reconnect_attempts):
            delay = self.backoff_s * (2 ** attempt)
            self.attempt, self.next_delay_s = attempt + 1, delay
            log.warning("%s: read failed, reconnecting in %.2f s (attempt %d of %d)", self.name, delay, attempt + 1,
                        self.reconnect_attempts)
            time.sleep(delay)
            if self._closed:
                return
            self._cap = self._open()
            if self._cap is not None:
                self.reconnects += 1
                log.warning("%s: reconnected after %.2f s down", self.name, time.monotonic() - self.down_since)
                return
        self.state = "failed"
        raise SourceError(f"{self.name}: no frames and {self.reconnect_attempts} reconnect attempts failed "
                          "(camera unplugged or driver error)")

    def _read(self) -> np.ndarray | None:
        ok, bgr = self._cap.read() if self._cap is not None else (False, None)
        if not ok or bgr is None or bgr.size == 0:
            return None
        if bgr.ndim == 2:
            return cv2.cvtColor(bgr, cv2.COLOR_GRAY2RGB)
        if bgr.shape[2] == 4:
            return cv2.cvtColor(bgr, cv2.COLOR_BGRA2RGB)
        return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)  # much faster than copying a reversed-channel view

    def __iter__(self) -> Iterator[Frame]:
        self._closed = False
        if self._cap is None:  # closed earlier: open again
            self._cap = self._open()
            if self._cap is None:
                raise SourceError(f"{self.name}: cannot reopen the camera")
        seq = 0
        failures = 0  # consecutive failed reads; reset by every good frame
        while not self._closed:
            if self._cap is None:
                self._reconnect()
                continue
            image = self._read()
            if image is None:
                failures += 1
                if failures > self.reconnect_attempts:
                    raise SourceError(f"{self.name}: {failures} failed reads in a row after reconnecting")
                self._reconnect()
                continue
            failures = 0
            self.state, self.down_since, self.attempt = "streaming", None, 0
            yield Frame(image=image, stamp_ns=time.time_ns(), frame_id=self.frame_id, seq=seq,
                        meta={"source": self.name})
            seq += 1

    def status(self) -> dict:
        """``state``, ``down_s`` (seconds since the outage began, 0 when streaming), ``attempt``, ``next_delay_s``,
        ``reconnects`` (successful reopenings so far): what a diagnostic reports while the camera is down."""
        down = time.monotonic() - self.down_since if self.down_since is not None else 0.0
        return {"state": self.state, "down_s": down, "attempt": self.attempt, "next_delay_s": self.next_delay_s,
                "reconnects": self.reconnects}

    def close(self) -> None:
        self._closed = True
        self.state = "closed"
        if self._cap is not None:
            self._cap.release()
            self._cap = None

    def __enter__(self) -> "CameraSource":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
