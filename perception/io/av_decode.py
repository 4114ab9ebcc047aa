"""PyAV helpers shared by the file and network sources: open a container, decode its video stream to RGB arrays.

Decoding follows PyAV's documented pattern (``container.demux(stream)`` then ``packet.decode()``) with
``thread_type = "AUTO"`` (frame and slice threads, FFmpeg's ``AVCodecContext.thread_type``). Timestamps are
``pts * time_base`` of the stream (FFmpeg's convention), relative to the stream's ``start_time``.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from fractions import Fraction
from typing import Iterator

import av
import numpy as np

from perception.io.frame import SourceError

log = logging.getLogger(__name__)

MAX_BAD_PACKETS = 8  # consecutive undecodable packets before a stream counts as broken


@dataclass
class StreamInfo:
    """What the container header says about its first video stream (fields are ``None`` when unknown)."""

    fps: float | None
    width: int
    height: int
    num_frames: int | None
    codec: str
    time_base: Fraction | None
    start_pts: int
    duration_ns: int | None


def open_container(target: str, what: str, options: dict[str, str] | None = None,
                   timeout: float | tuple[float, float] | None = None) -> av.container.InputContainer:
    """``av.open`` that turns FFmpeg errors into ``SourceError`` naming ``what`` (the file or URL) and the reason."""
    try:
        return av.open(target, mode="r", options=options or {}, timeout=timeout)
    except FileNotFoundError as exc:
        raise SourceError(f"{what}: no such file") from exc
    except IsADirectoryError as exc:
        raise SourceError(f"{what}: is a directory, not a video file") from exc
    except av.error.ExitError as exc:  # PyAV's timeout interrupted the blocking call
        raise SourceError(f"{what}: no answer within the {timeout} s timeout") from exc
    except ConnectionRefusedError as exc:
        raise SourceError(f"{what}: connection refused (nothing listens at that address)") from exc
    except av.error.InvalidDataError as exc:
        raise SourceError(f"{what}: not a video FFmpeg can read (invalid or truncated data)") from exc
    except EOFError as exc:
        raise SourceError(f"{what}: ends before its header is complete (truncated file)") from exc
    except (av.FFmpegError, OSError) as exc:
        raise SourceError(f"{what}: cannot open ({exc})") from exc


def first_video_stream(container: av.container.InputContainer, what: str) -> av.video.stream.VideoStream:
    """The first video stream, with threaded decoding switched on; ``SourceError`` when there is none."""
    if not container.streams.video:
        kinds = sorted({s.type for s in container.streams}) or ["none"]
        container.close()
        raise SourceError(f"{what}: has no video stream (streams found: {', '.join(kinds)})")
    stream = container.streams.video[0]
    if stream.codec_context is None:  # the demuxer found a video stream but FFmpeg has no decoder for its codec
        tag = getattr(stream, "codec_tag", "") or "unknown"
        container.close()
        raise SourceError(f"{what}: unsupported video codec (codec tag '{tag}'): FFmpeg has no decoder for it")
    stream.thread_type = "AUTO"
    return stream


def stream_info(stream: av.video.stream.VideoStream) -> StreamInfo:
    rate = stream.average_rate or stream.guessed_rate or stream.base_rate
    fps = float(rate) if rate else None
    frames = int(stream.frames) if stream.frames else None
    if frames is None and stream.duration and stream.time_base and fps:
        frames = int(round(float(stream.duration * stream.time_base) * fps))
    return StreamInfo(
        fps=fps,
        width=int(stream.codec_context.width),
        height=int(stream.codec_context.height),
        num_frames=frames,
        codec=stream.codec_context.name,
        time_base=stream.time_base,
        start_pts=int(stream.start_time or 0),
        duration_ns=int(stream.duration * stream.time_base * 1_000_000_000) if stream.duration and stream.time_base
        else None,
    )


def frame_time_ns(frame: av.VideoFrame, info: StreamInfo) -> int | None:
    """Presentation time of ``frame`` relative to the stream start, in ns; ``None`` without a pts."""
    if frame.pts is None or info.time_base is None:
        return None
    return int(round((frame.pts - info.start_pts) * info.time_base * 1_000_000_000))


def decode_frames(container: av.container.InputContainer, stream: av.video.stream.VideoStream,
                  what: str, strict: bool = False) -> Iterator[av.VideoFrame]:
    """Yield decoded frames of ``stream``; a corrupt or cut-off tail ends the iteration with a warning, never a hang.

    Isolated bad packets are skipped (as ``ffmpeg`` does); more than ``MAX_BAD_PACKETS`` in a row, or a demuxer error
    (including a read timeout), stops decoding: with a warning, or with ``SourceError`` when ``strict`` (live streams,
    where the caller must know the connection was lost).
    """
    bad = 0
    packets = container.demux(stream)
    while True:
        try:
            packet = next(packets)
        except StopIteration:
            return
        except (av.FFmpegError, EOFError, OSError) as exc:
            if strict:
                reason = "no data within the read timeout" if isinstance(exc, av.error.ExitError) else str(exc)
                raise SourceError(f"{what}: reading failed ({reason})") from exc
            log.warning("%s: stopped reading at a damaged or truncated part (%s)", what, exc)
            yield from _drain(stream)
            return
        try:
            frames = packet.decode()
            bad = 0
        except (av.FFmpegError, EOFError) as exc:
            bad += 1
            if bad > MAX_BAD_PACKETS:
                if strict:
                    raise SourceError(f"{what}: {bad} undecodable packets in a row ({exc})") from exc
                log.warning("%s: stopped after %d undecodable packets in a row (%s)", what, bad, exc)
                yield from _drain(stream)
                return
            continue
        yield from frames


def _drain(stream: av.video.stream.VideoStream) -> list[av.VideoFrame]:
    """Frames still inside the decoder (frame threads hold several) after the input stopped early."""
    try:
        return list(stream.codec_context.decode(None))
    except (av.FFmpegError, EOFError, ValueError):
        return []


def to_rgb(frame: av.VideoFrame) -> np.ndarray:
    """``(H, W, 3)`` uint8 RGB, C-contiguous."""
    return np.ascontiguousarray(frame.to_ndarray(format="rgb24"))
