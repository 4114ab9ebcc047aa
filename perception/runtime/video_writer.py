"""MP4 writing with PyAV, finalised atomically.

Frames go to a temporary file beside the target (``.<name>.<random>.part.mp4``) and the file is renamed into place
only after the encoder is flushed and the container closed, so a reader never sees a half-written video and a crash
leaves no truncated ``overlay.mp4``. H.264 (libx264, ``yuv420p`` so every player decodes it) when FFmpeg has it,
else MPEG-4 part 2. 4:2:0 chroma needs even sides: an odd width or height is padded by one replicated pixel.
"""

from __future__ import annotations

import os
import tempfile
from fractions import Fraction
from pathlib import Path

import av
import numpy as np

CODECS = ("libx264", "mpeg4")


def pick_codec(preferred: str = "libx264") -> str:
    for name in (preferred, *CODECS):
        if name in av.codecs_available:
            return name
    raise RuntimeError(f"none of the video encoders {CODECS} is available in this FFmpeg build")


def even_frame(image: np.ndarray) -> np.ndarray:
    """Pad an ``(H, W, 3)`` image with its last row/column so both sides are even."""
    pad_h, pad_w = image.shape[0] % 2, image.shape[1] % 2
    if pad_h or pad_w:
        image = np.pad(image, ((0, pad_h), (0, pad_w), (0, 0)), mode="edge")
    return np.ascontiguousarray(image)


class VideoWriter:
    """``with VideoWriter(path, fps) as w: w.write(rgb)``. The size is taken from the first frame; later frames of
    another size raise ``ValueError``. ``close()`` renames into place; ``abort()`` discards the partial file."""

    def __init__(self, path: str | Path, fps: float = 30.0, codec: str = "libx264", crf: int = 23) -> None:
        if not fps > 0:
            raise ValueError(f"VideoWriter {path}: fps must be > 0, got {fps}")
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{self.path.stem}.", suffix=".part.mp4", dir=self.path.parent)
        os.close(fd)
        self._tmp = Path(tmp)
        self.fps = float(fps)
        self.codec = pick_codec(codec)
        self.crf = crf
        self._container = av.open(str(self._tmp), mode="w", format="mp4")
        self._stream = None
        self._size: tuple[int, int] | None = None
        self.frames = 0

    def _open_stream(self, width: int, height: int) -> None:
        rate = Fraction(self.fps).limit_denominator(1001)
        stream = self._container.add_stream(self.codec, rate=rate)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        if self.codec == "libx264":
            stream.options = {"crf": str(self.crf), "preset": "veryfast"}
        else:
            stream.bit_rate = max(1_000_000, width * height * 4)
        self._stream, self._size = stream, (width, height)

    def write(self, image: np.ndarray) -> None:
        """Append one ``(H, W, 3)`` uint8 RGB frame."""
        if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
            raise ValueError(f"VideoWriter {self.path}: expected (H, W, 3) uint8 RGB, got {image.shape} {image.dtype}")
        image = even_frame(image)
        height, width = image.shape[:2]
        if self._stream is None:
            self._open_stream(width, height)
        elif (width, height) != self._size:
            raise ValueError(f"VideoWriter {self.path}: frame {self.frames} is {width}x{height}, "
                             f"the video is {self._size[0]}x{self._size[1]}")
        frame = av.VideoFrame.from_ndarray(image, format="rgb24")
        for packet in self._stream.encode(frame):
            self._container.mux(packet)
        self.frames += 1

    def close(self) -> Path | None:
        """Flush, close and rename into place; returns the path (None when no frame was written: nothing kept)."""
        if self._container is None:
            return self.path if self.path.exists() else None
        try:
            if self._stream is not None:
                for packet in self._stream.encode(None):
                    self._container.mux(packet)
        finally:
            self._container.close()
            self._container = None
        if self.frames == 0:
            self._tmp.unlink(missing_ok=True)
            return None
        os.replace(self._tmp, self.path)
        return self.path

    def abort(self) -> None:
        if self._container is not None:
            try:
                self._container.close()
            except Exception:  # noqa: BLE001 - discarding anyway; the original error matters, not this one
                pass
            self._container = None
        self._tmp.unlink(missing_ok=True)

    def __enter__(self) -> "VideoWriter":
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            self.close()
        else:
            self.abort()
