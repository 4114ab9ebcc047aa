"""Random access to video frames by 0-based index, for sampling training clips.

``read_frames(path, indices)`` uses decord's ``VideoReader.get_batch`` when decord is installed, otherwise PyAV:
requested indices are visited in sorted order; a target close ahead of the decoder is reached by decoding forward,
a far one by seeking to the preceding keyframe (``container.seek(..., backward=True)``, FFmpeg's ``av_seek_frame``)
and decoding forward from there. A frame's index is its presentation time times the stream's average rate, which
assumes a constant frame rate (true of camera footage and of the clips the project records).
"""

from __future__ import annotations

from pathlib import Path
from typing import Iterator, Sequence

import av
import numpy as np

from perception.io import av_decode
from perception.io.frame import SourceError

SEEK_AHEAD = 48  # targets further ahead than this are reached by seeking rather than decoding forward


def _decord_available() -> bool:
    try:
        import decord  # noqa: F401, PLC0415
    except ImportError:
        return False
    return True


def _check_indices(indices: Sequence[int] | np.ndarray, path: Path) -> np.ndarray:
    idx = np.asarray(indices)
    if idx.ndim != 1 or (idx.size and not np.issubdtype(idx.dtype, np.integer)):
        raise SourceError(f"{path}: frame indices must be a 1-D sequence of integers, "
                          f"got shape {idx.shape} {idx.dtype}")
    if idx.size and idx.min() < 0:
        raise SourceError(f"{path}: frame indices must be >= 0, got {int(idx.min())}")
    return idx.astype(np.int64)


class _Cursor:
    """A PyAV decoder positioned somewhere in the stream; yields ``(index, frame)`` in order."""

    def __init__(self, path: Path) -> None:
        self.what = str(path)
        self.container = av_decode.open_container(self.what, self.what)
        self.stream = av_decode.first_video_stream(self.container, self.what)
        self.info = av_decode.stream_info(self.stream)
        self.index = -1  # index of the last frame handed out
        self._frames: Iterator[av.VideoFrame] = av_decode.decode_frames(self.container, self.stream, self.what)
        self._counting = True  # from the start, frames are counted; after a seek their index comes from the pts

    def _index_of(self, frame: av.VideoFrame) -> int:
        stamp = av_decode.frame_time_ns(frame, self.info)
        if self._counting or stamp is None or not self.info.fps:
            return self.index + 1
        return int(round(stamp * 1e-9 * self.info.fps))

    def seek(self, target: int) -> None:
        """Jump to the keyframe at or before ``target``; fall back to decoding from the start without timing data."""
        if not self.info.fps or self.info.time_base is None:
            return
        pts = self.info.start_pts + int(target / self.info.fps / self.info.time_base)
        try:
            self.container.seek(pts, stream=self.stream, backward=True, any_frame=False)
        except av.FFmpegError:
            return
        self._frames = av_decode.decode_frames(self.container, self.stream, self.what)
        self._counting = False
        self.index = -1

    def advance_to(self, target: int) -> av.VideoFrame | None:
        """Decode forward to the frame with index ``target``; ``None`` at the end of the stream or on overshoot."""
        for frame in self._frames:
            idx = self._index_of(frame)
            if self.index >= 0 and idx <= self.index:
                idx = self.index + 1
            self.index = idx
            if idx == target:
                return frame
            if idx > target:
                return None
        return None

    def close(self) -> None:
        self.container.close()


def _read_pyav(path: Path, wanted: list[int]) -> dict[int, np.ndarray]:
    out: dict[int, np.ndarray] = {}
    cursor = _Cursor(path)
    try:
        for target in wanted:
            if target > cursor.index + SEEK_AHEAD or target <= cursor.index:
                cursor.seek(target)
            frame = cursor.advance_to(target)
            if frame is None and cursor.index != target:
                # the seek landed past the target (bad index) or the stream ended: decode from the start to be sure
                cursor.close()
                cursor = _Cursor(path)
                frame = cursor.advance_to(target)
            if frame is None:
                raise SourceError(f"{path}: frame index {target} is out of range (the video has {cursor.index + 1} "
                                  "decodable frames)")
            out[target] = av_decode.to_rgb(frame)
    finally:
        cursor.close()
    return out


def _read_decord(path: Path, idx: np.ndarray) -> np.ndarray:
    import decord  # noqa: PLC0415

    reader = decord.VideoReader(str(path), ctx=decord.cpu(0))
    if idx.size and int(idx.max()) >= len(reader):
        raise SourceError(f"{path}: frame index {int(idx.max())} is out of range (the video has {len(reader)} frames)")
    return np.ascontiguousarray(reader.get_batch(idx.tolist()).asnumpy())


def read_frames(path: str | Path, indices: Sequence[int] | np.ndarray, backend: str = "auto") -> np.ndarray:
    """Frames ``indices`` (0-based, any order, repeats allowed) of a video as ``(N, H, W, 3)`` uint8 RGB.

    ``backend``: ``"auto"`` (decord when installed, else PyAV), ``"decord"`` or ``"pyav"``.
    Raises ``SourceError`` naming the file for a missing or unreadable file and for an index past the end.
    """
    path = Path(path)
    if not path.exists():
        raise SourceError(f"{path}: no such file")
    idx = _check_indices(indices, path)
    if backend == "auto":
        backend = "decord" if _decord_available() else "pyav"
    if backend == "decord":
        if not _decord_available():
            raise SourceError("read_frames: backend 'decord' requested but decord is not installed "
                              "(pip install decord==0.6.0, or use backend 'pyav')")
        return _read_decord(path, idx)
    if backend != "pyav":
        raise SourceError(f"read_frames: unknown backend '{backend}' (expected auto, decord or pyav)")
    if idx.size == 0:
        cursor = _Cursor(path)
        cursor.close()
        return np.zeros((0, cursor.info.height, cursor.info.width, 3), np.uint8)
    decoded = _read_pyav(path, sorted(set(idx.tolist())))
    return np.stack([decoded[i] for i in idx.tolist()])
