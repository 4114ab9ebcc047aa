"""Frame sources: video files, cameras, network streams, image folders, rosbag2 bags, the synthetic scene.

``open_source(SourceConfig)`` picks the source from its URI; ``paced`` replays any source in real time. The names
below are loaded on first use (PEP 562 module ``__getattr__``), so importing ``perception.io.frame`` does not pull
in PyAV, OpenCV or rosbags.
"""

from __future__ import annotations

import importlib
from typing import Any

from perception.io.frame import Frame, FrameSource, SourceError

_LAZY = {
    "VideoFileSource": "perception.io.video",
    "read_frames": "perception.io.frame_access",
    "CameraSource": "perception.io.camera",
    "NetworkStreamSource": "perception.io.network",
    "ImageFolderSource": "perception.io.folder",
    "BagSource": "perception.io.bag",
    "SyntheticScene": "perception.io.synthetic",
    "open_source": "perception.io.factory",
    "RateLimiter": "perception.io.pacing",
    "paced": "perception.io.pacing",
}

__all__ = ["Frame", "FrameSource", "SourceError", *_LAZY]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'perception.io' has no attribute '{name}'")
