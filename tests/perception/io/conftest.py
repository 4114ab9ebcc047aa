"""Small real video clips, image folders and shared-data paths for the frame-source tests."""

from __future__ import annotations

from pathlib import Path
from typing import Callable

import av
import numpy as np
import pytest

SHARED_DATA = Path(__file__).resolve().parents[3].parent / "shared" / "data"


def clip_colour(i: int) -> np.ndarray:
    """The flat RGB colour of frame ``i`` of a test clip: distinct within 24 frames, so order and identity are checkable."""
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


@pytest.fixture
def make_clip(tmp_path: Path) -> Callable[..., Path]:
    def make(name: str = "clip.mp4", **kwargs) -> Path:
        return write_clip(tmp_path / name, **kwargs)

    return make


@pytest.fixture
def shared_data() -> Path:
    if not SHARED_DATA.is_dir():
        pytest.skip(f"shared data not found at {SHARED_DATA}")
    return SHARED_DATA


def shared_file(shared: Path, rel: str) -> Path:
    path = shared / rel
    if not path.exists():
        pytest.skip(f"{path} is absent")
    return path
