"""Fixtures for the frame-source tests: small real video clips of known colours, shared-data paths.

The suite runs with ``--import-mode=importlib``, so helpers reach the tests as fixtures, never by import;
``shared_data`` comes from ``tests/conftest.py``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable

import av
import numpy as np
import pytest


def clip_colour(i: int) -> np.ndarray:
    """The flat RGB colour of frame ``i`` of a test clip: distinct within 24 frames, so order is checkable."""
    k = i % 24
    return np.array([20 + 9 * k, 220 - 7 * k, 40 + 100 * (i % 2)], dtype=np.uint8)


def write_clip(path: Path, n: int = 20, width: int = 64, height: int = 48, fps: int = 10, codec: str = "h264",
               fmt: str | None = None, gop: int = 5, options: dict[str, str] | None = None) -> Path:
    """Encode ``n`` flat-colour frames (``clip_colour``) with PyAV; ``gop`` frames between keyframes."""
    with av.open(str(path), "w", format=fmt, options=options or {}) as container:
        stream = container.add_stream(codec, rate=fps)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        stream.gop_size = gop
        for i in range(n):
            image = np.empty((height, width, 3), np.uint8)
            image[:] = clip_colour(i)
            for packet in stream.encode(av.VideoFrame.from_ndarray(image, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path


@pytest.fixture(name="clip_colour")
def clip_colour_fixture() -> Callable[[int], np.ndarray]:
    return clip_colour


@pytest.fixture
def make_clip(tmp_path: Path) -> Callable[..., Path]:
    """``make_clip(name="clip.mp4", **write_clip options)`` writes a clip into ``tmp_path``."""

    def make(name: str = "clip.mp4", **kwargs) -> Path:
        return write_clip(tmp_path / name, **kwargs)

    return make


@pytest.fixture
def shared_file(shared_data: Path) -> Callable[[str], Path]:
    """``shared_file("videos/vtest.avi")``: the path under the shared data, or a skip when that file is absent."""

    def find(rel: str) -> Path:
        path = shared_data / rel
        if not path.exists():
            pytest.skip(f"{path} is absent")
        return path

    return find
