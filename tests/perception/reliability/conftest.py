"""Fixtures for the reliability tests: small real clips, bags, checkpoints and servers made in the test.

The suite runs with ``--import-mode=importlib``, so helpers reach the tests as fixtures, never by import.
"""

from __future__ import annotations

import socket
from pathlib import Path
from typing import Callable

import av
import numpy as np
import pytest


def _write_clip(path: Path, n: int = 12, width: int = 64, height: int = 48, codec: str = "mpeg4",
                fmt: str | None = None) -> Path:
    with av.open(str(path), "w", format=fmt) as container:
        stream = container.add_stream(codec, rate=10)
        stream.width, stream.height = width, height
        stream.pix_fmt = "yuvj420p" if codec == "mjpeg" else "yuv420p"
        for i in range(n):
            image = np.full((height, width, 3), (20 + 9 * i) % 256, np.uint8)
            for packet in stream.encode(av.VideoFrame.from_ndarray(image, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path


@pytest.fixture
def make_clip(tmp_path: Path) -> Callable[..., Path]:
    """``make_clip(name, n=12, width=64, height=48, codec="mpeg4", fmt=None)``: a real clip in ``tmp_path``."""

    def make(name: str = "clip.avi", **kwargs) -> Path:
        return _write_clip(tmp_path / name, **kwargs)

    return make


@pytest.fixture
def silent_port():
    """A loopback port that accepts connections and never sends a byte."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(8)
    yield listener.getsockname()[1]
    listener.close()


@pytest.fixture
def closed_port() -> int:
    """A loopback port nobody listens on (connections are refused)."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()
    return port


@pytest.fixture(scope="module")
def tiny_checkpoint(tmp_path_factory) -> Path:
    """A saved ``dualstream_tiny`` checkpoint (``.safetensors`` + ``.json``); returns the weights path."""
    import torch

    from perception.models import create_encoder
    from perception.models.checkpoint import save_checkpoint

    torch.manual_seed(0)
    folder = tmp_path_factory.mktemp("ckpt")
    return save_checkpoint(create_encoder("dualstream_tiny"), folder / "tiny", {}, {"test": True})


class MarkerPickle:
    """Unpickling this object would create ``path`` (``__reduce__`` returns a call to ``open(path, "w")``)."""

    def __init__(self, path: Path) -> None:
        self.path = str(path)

    def __reduce__(self):
        return (open, (self.path, "w"))


@pytest.fixture
def marker_pickle(tmp_path: Path) -> Callable[[Path], Path]:
    """``marker_pickle(file) -> marker``: write to ``file`` a pickle whose loading would create ``marker``."""
    import pickle

    def make(file: Path) -> Path:
        marker = tmp_path / f"PWNED-{file.name}"
        file.write_bytes(pickle.dumps({"weights": MarkerPickle(marker)}))
        assert not marker.exists()
        return marker

    return make
