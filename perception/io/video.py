"""Video files as a ``FrameSource``: PyAV by default, decord or OpenCV on request.

Stamps are the file's presentation times (``pts * time_base``, FFmpeg's convention) in ns from the first frame,
kept strictly increasing and continued across loops (a loop adds the duration of the pass, one frame period past
the last stamp), so a looping file looks like one long recording. ``read_frames`` (random access by frame index, for
clip sampling in training) lives in ``perception.io.frame_access`` and is re-exported here.
"""

from __future__ import annotations

import logging
import weakref
from pathlib import Path
from typing import Iterator

import numpy as np

from perception.io import av_decode
from perception.io.frame import Frame, SourceError
from perception.io.frame_access import read_frames

__all__ = ["VIDEO_EXTENSIONS", "VideoFileSource", "read_frames"]

log = logging.getLogger(__name__)

VIDEO_EXTENSIONS = frozenset(
    {".mp4", ".m4v", ".mov", ".avi", ".mkv", ".webm", ".ts", ".mts", ".m2ts", ".mpg", ".mpeg", ".flv", ".wmv",
     ".h264", ".264", ".hevc", ".h265", ".ogv", ".3gp", ".y4m"}
)
BACKENDS = ("pyav", "decord", "opencv")
DEFAULT_FPS = 30.0  # used for stamps only when the file states no rate


def _import_decord():
    try:
        import decord  # noqa: PLC0415 (optional dependency, imported on use)
    except ImportError as exc:
        raise SourceError(
            "video backend 'decord' was requested but decord is not installed "
            "(pip install decord==0.6.0, or use backend 'pyav' or 'opencv')"
        ) from exc
    return decord


def _pyav_pass(path: Path) -> Iterator[tuple[np.ndarray, int | None]]:
    container = av_decode.open_container(str(path), str(path))
    try:
        stream = av_decode.first_video_stream(container, str(path))
        info = av_decode.stream_info(stream)
        for frame in av_decode.decode_frames(container, stream, str(path)):
            yield av_decode.to_rgb(frame), av_decode.frame_time_ns(frame, info)
    finally:
        container.close()


def _decord_pass(path: Path) -> Iterator[tuple[np.ndarray, int | None]]:
    decord = _import_decord()
    reader = decord.VideoReader(str(path), ctx=decord.cpu(0))
    for i in range(len(reader)):
        start_s = float(reader.get_frame_timestamp(i)[0])
        yield np.ascontiguousarray(reader[i].asnumpy()), int(round(start_s * 1e9))


def _opencv_pass(path: Path) -> Iterator[tuple[np.ndarray, int | None]]:
    import cv2  # noqa: PLC0415 (keeps the pyav path free of the OpenCV import cost)

    cap = cv2.VideoCapture(str(path))
    try:
        if not cap.isOpened():
            raise SourceError(f"{path}: OpenCV cannot open this file as a video")
        while True:
            ok, bgr = cap.read()
            if not ok:
                return
            stamp_ms = cap.get(cv2.CAP_PROP_POS_MSEC)  # after read(): the presentation time of the frame just read
            yield cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB), int(round(stamp_ms * 1e6))  # 40x faster than a [..., ::-1] copy
    finally:
        cap.release()


_PASSES = {"pyav": _pyav_pass, "decord": _decord_pass, "opencv": _opencv_pass}


class VideoFileSource:
    """Frames of a video file, decoded to ``(H, W, 3)`` uint8 RGB.

    ``fps``, ``size`` ``(width, height)`` and ``num_frames`` come from the container header (``num_frames`` is
    ``None`` when the container does not say). Errors (missing file, not a video, no video stream, header cut off)
    raise ``SourceError`` at construction; a file whose body is cut off yields the frames it has, then stops with a
    logged warning. Iterating again starts from the first frame.
    """

    def __init__(self, path: str | Path, backend: str = "pyav", loop: bool = False,
                 frame_id: str = "camera_optical_frame", name: str | None = None) -> None:
        if backend not in BACKENDS:
            raise SourceError(f"{path}: unknown video backend '{backend}' (expected one of {', '.join(BACKENDS)})")
        self.path = Path(path)
        self.backend = backend
        self.loop = loop
        self.frame_id = frame_id
        self.name = name or self.path.name
        self._closed = False
        self._iterations: weakref.WeakSet = weakref.WeakSet()
        if not self.path.exists():
            raise SourceError(f"{self.path}: no such file")
        if backend == "decord":
            _import_decord()
        self._probe()

    def _probe(self) -> None:
        container = av_decode.open_container(str(self.path), str(self.path))
        try:
            info = av_decode.stream_info(av_decode.first_video_stream(container, str(self.path)))
        finally:
            container.close()
        if info.width <= 0 or info.height <= 0:
            raise SourceError(f"{self.path}: video stream has no frame size ({info.width}x{info.height})")
        self.fps: float | None = info.fps
        self.size: tuple[int, int] = (info.width, info.height)
        self.num_frames: int | None = info.num_frames  # as the header states (variable-rate files may decode fewer)
        self.duration_ns: int | None = info.duration_ns
        self.codec = info.codec

    @property
    def frame_period_ns(self) -> int:
        return int(round(1e9 / (self.fps or DEFAULT_FPS)))

    def __iter__(self) -> Iterator[Frame]:
        self._closed = False
        frames = self._frames()
        self._iterations.add(frames)
        return frames

    def _frames(self) -> Iterator[Frame]:
        seq = 0
        offset_ns = 0  # added to the stamps of each pass so they keep increasing across loops
        last_ns = -1
        while not self._closed:
            count = 0
            pass_end = -1
            for image, rel_ns in _PASSES[self.backend](self.path):
                if self._closed:
                    return
                if rel_ns is None:
                    rel_ns = count * self.frame_period_ns
                stamp = offset_ns + rel_ns
                if stamp <= last_ns:  # missing or repeated pts: keep the clock moving forward
                    stamp = last_ns + 1
                last_ns = stamp
                pass_end = stamp - offset_ns
                yield Frame(image=image, stamp_ns=stamp, frame_id=self.frame_id, seq=seq,
                            meta={"source": self.name, "index": count})
                seq += 1
                count += 1
            self._check_pass(count, pass_end)
            if not self.loop:
                return
            offset_ns += pass_end + self.frame_period_ns

    def _check_pass(self, count: int, last_ns: int) -> None:
        """Raise when a pass gave nothing; warn when it ended well before the duration the header announces."""
        if count == 0:
            raise SourceError(f"{self.path}: no decodable frames (damaged or truncated file, codec {self.codec})")
        if self.duration_ns is not None:  # by time: variable-rate files legitimately decode fewer frames than counted
            if last_ns + 2 * self.frame_period_ns < self.duration_ns:
                log.warning("%s: decoding stopped at %.3f s of the %.3f s the header announces, after %d frames "
                            "(file truncated or damaged)", self.path, last_ns * 1e-9, self.duration_ns * 1e-9, count)
        elif self.num_frames is not None and count < self.num_frames:
            log.warning("%s: decoded %d of the %d frames the header announces (file truncated or damaged)",
                        self.path, count, self.num_frames)

    def close(self) -> None:
        """End iterations in progress and release their decoders (from another thread: they stop at the next frame)."""
        self._closed = True
        for frames in list(self._iterations):
            try:
                frames.close()
            except ValueError:  # running in another thread right now; the flag stops it
                pass

    def __enter__(self) -> "VideoFileSource":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return (f"VideoFileSource({str(self.path)!r}, backend={self.backend!r}, fps={self.fps}, size={self.size}, "
                f"num_frames={self.num_frames})")
