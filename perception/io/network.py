"""A network video stream (RTSP, HTTP(S), UDP, TCP, RTMP, SRT) as a ``FrameSource``, through PyAV/FFmpeg.

Opening and every read are bounded by ``timeout_s`` (PyAV's ``timeout=(open, read)`` interrupt callback, plus
FFmpeg's per-protocol socket ``timeout`` option in microseconds), so a URL that does not answer raises
``SourceError`` within about ``timeout_s`` instead of blocking the node. RTSP runs over TCP by default
(``rtsp_transport``), which survives lossy links and NAT better than UDP. Frames are stamped with the wall clock on
arrival (``time.time_ns()``); the stream's own presentation time is kept in ``meta["pts_ns"]``.
"""

from __future__ import annotations

import logging
import time
from typing import Iterator
from urllib.parse import urlsplit

from perception.io import av_decode
from perception.io.frame import Frame, SourceError

log = logging.getLogger(__name__)

SCHEMES = ("rtsp", "rtsps", "rtmp", "rtmps", "http", "https", "udp", "tcp", "srt", "rtp")
RTSP_TRANSPORTS = ("tcp", "udp", "udp_multicast", "http")


def redact(url: str) -> str:
    """The URL without its password, for messages and logs."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.replace(f":{parts.password}@", ":***@")
    return parts._replace(netloc=netloc).geturl()


def is_stream_url(uri: str) -> bool:
    return urlsplit(uri).scheme.lower() in SCHEMES


class NetworkStreamSource:
    """Frames of a network stream as ``(H, W, 3)`` uint8 RGB with wall-clock stamps.

    ``options`` are extra FFmpeg options (strings), merged over the defaults chosen here. The connection is made at
    construction (so a bad URL fails there) and reused by the first iteration; later iterations reconnect. A stream
    that stops answering mid-way raises ``SourceError``; one that ends normally (a served file) ends the iteration.
    """

    live = True  # frames arrive in real time: pacing must not delay them (perception.io.pacing)

    def __init__(self, url: str, timeout_s: float = 5.0, rtsp_transport: str = "tcp",
                 options: dict[str, str] | None = None, frame_id: str = "camera_optical_frame",
                 name: str | None = None) -> None:
        scheme = urlsplit(url).scheme.lower()
        if scheme not in SCHEMES:
            raise SourceError(f"stream '{redact(url)}': unsupported scheme '{scheme}' (expected {', '.join(SCHEMES)})")
        if rtsp_transport not in RTSP_TRANSPORTS:
            raise SourceError(f"stream '{redact(url)}': rtsp_transport '{rtsp_transport}' is not one of "
                              f"{', '.join(RTSP_TRANSPORTS)}")
        if timeout_s <= 0:
            raise SourceError(f"stream '{redact(url)}': timeout_s must be > 0, got {timeout_s}")
        self.url = url
        self.scheme = scheme
        self.timeout_s = float(timeout_s)
        self.frame_id = frame_id
        self.name = name or redact(url)
        self._options = self._default_options(rtsp_transport)
        self._options.update({k: str(v) for k, v in (options or {}).items()})
        self._closed = False
        self._container = None
        self._connect()

    def _default_options(self, rtsp_transport: str) -> dict[str, str]:
        micros = str(int(self.timeout_s * 1_000_000))
        opts = {"timeout": micros}
        if self.scheme in ("rtsp", "rtsps"):
            opts["rtsp_transport"] = rtsp_transport
        if self.scheme in ("http", "https"):
            opts["rw_timeout"] = micros
            opts["reconnect"] = "0"
        return opts

    def _connect(self) -> None:
        what = f"stream '{self.name}'"
        started = time.monotonic()
        try:
            container = av_decode.open_container(self.url, what, options=self._options, timeout=self.timeout_s)
        except SourceError as exc:
            message = str(exc).replace(self.url, self.name)  # FFmpeg's own text repeats the URL with any password
            waited = time.monotonic() - started
            if waited >= 0.8 * self.timeout_s and "timeout" not in message:
                message += (f" after waiting {waited:.1f} s (timeout_s={self.timeout_s}): the server accepted the "
                            "connection but sent no usable stream")
            raise SourceError(message) from None
        stream = av_decode.first_video_stream(container, what)
        info = av_decode.stream_info(stream)
        log.info("%s: connected in %.2f s (%s %dx%d)", what, time.monotonic() - started, info.codec, info.width,
                 info.height)
        self._container, self._stream, self._info = container, stream, info
        self.fps: float | None = info.fps
        self.size: tuple[int, int] | None = (info.width, info.height) if info.width > 0 else None

    def __iter__(self) -> Iterator[Frame]:
        self._closed = False
        if self._container is None:
            self._connect()
        container, stream, info = self._container, self._stream, self._info
        seq = 0
        try:
            for frame in av_decode.decode_frames(container, stream, f"stream '{self.name}'", strict=True):
                if self._closed:
                    return
                yield Frame(image=av_decode.to_rgb(frame), stamp_ns=time.time_ns(), frame_id=self.frame_id,
                            seq=seq, meta={"source": self.name, "pts_ns": av_decode.frame_time_ns(frame, info)})
                seq += 1
        finally:
            if self._container is container:
                self._container = None
            container.close()

    def close(self) -> None:
        self._closed = True
        if self._container is not None:
            self._container.close()
            self._container = None

    def __enter__(self) -> "NetworkStreamSource":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
