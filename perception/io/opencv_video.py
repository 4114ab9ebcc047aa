"""Every frame of a video file in order through OpenCV (its FFmpeg backend): the reader the detection benchmark,
the speed bench, bag-from-video and the PyAV-less training fallback share, so they decode the very same frames."""

from __future__ import annotations

from pathlib import Path
from typing import Iterator

import cv2
import numpy as np


def read_video(path: str | Path, max_frames: int = 0) -> Iterator[np.ndarray]:
    """Decoded ``(H, W, 3)`` uint8 RGB frames of ``path`` in order, at most ``max_frames`` (0: all), stopping at the
    first frame that fails to decode; ``FileNotFoundError`` when OpenCV cannot open it."""
    capture = cv2.VideoCapture(str(path))
    if not capture.isOpened():
        raise FileNotFoundError(f"video {path} cannot be opened")
    count = 0
    try:
        while not max_frames or count < max_frames:
            ok, frame = capture.read()
            if not ok:
                return
            count += 1
            yield cv2.cvtColor(frame, cv2.COLOR_BGR2RGB)
    finally:
        capture.release()
