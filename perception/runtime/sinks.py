"""Where results go on the command line: JSON lines, an MP4 overlay, or memory (tests and notebooks).

Every sink has ``write(result, frame)`` and ``close()`` (the ``Sink`` protocol); the pipeline calls ``close`` once,
also after an error, so files are complete or absent, never half-written.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import IO, Protocol, runtime_checkable

from perception.io.frame import Frame
from perception.runtime.result import PerceptionResult
from perception.runtime.video_writer import VideoWriter
from perception.runtime.visualize import draw_overlay


@runtime_checkable
class Sink(Protocol):
    def write(self, result: PerceptionResult, frame: Frame) -> None: ...

    def close(self) -> None: ...


def result_record(result: PerceptionResult) -> dict:
    """The JSON-friendly summary of one result (no arrays but the detections)."""
    return {
        "stamp_ns": int(result.stamp_ns),
        "seq": int(result.seq),
        "frame_id": result.frame_id,
        "keyframe": bool(result.keyframe),
        "detections": result.detections.to_list(),
        "timings_ms": {k: round(float(v), 3) for k, v in result.timings_ms.items()},
    }


class JsonLinesSink:
    """One JSON object per processed frame (``result_record``), one line each, flushed as written so that a
    reader (``tail -f``) or a crash sees whole lines only."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._file: IO[str] | None = self.path.open("w", encoding="utf-8")
        self.count = 0

    def write(self, result: PerceptionResult, frame: Frame) -> None:
        if self._file is None:
            raise RuntimeError(f"JsonLinesSink {self.path}: write after close")
        self._file.write(json.dumps(result_record(result), separators=(",", ":")) + "\n")
        self._file.flush()
        self.count += 1

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None


def read_json_lines(path: str | Path) -> list[dict]:
    """Parse a file written by ``JsonLinesSink``."""
    with Path(path).open(encoding="utf-8") as handle:
        return [json.loads(line) for line in handle if line.strip()]


class OverlayVideoSink:
    """MP4 of the overlay (``result.overlay`` when the perceiver drew it, else drawn here from the frame), at
    ``fps`` (the source's rate, so the video plays in real time). Finalised atomically by ``VideoWriter``."""

    def __init__(self, path: str | Path, fps: float = 30.0, codec: str = "libx264") -> None:
        self.path = Path(path)
        self._writer = VideoWriter(self.path, fps=fps, codec=codec)
        self.aborted = False

    @property
    def count(self) -> int:
        return self._writer.frames

    def write(self, result: PerceptionResult, frame: Frame) -> None:
        image = result.overlay if result.overlay is not None else draw_overlay(frame.image, result.detections)
        self._writer.write(image)

    def close(self) -> None:
        self._writer.close()

    def abort(self) -> None:
        self.aborted = True
        self._writer.abort()


class MemorySink:
    """Keeps every result (and the frames, with ``keep_frames``) in lists."""

    def __init__(self, keep_frames: bool = False) -> None:
        self.results: list[PerceptionResult] = []
        self.frames: list[Frame] = []
        self.keep_frames = keep_frames
        self.closed = False

    def write(self, result: PerceptionResult, frame: Frame) -> None:
        self.results.append(result)
        if self.keep_frames:
            self.frames.append(frame)

    def close(self) -> None:
        self.closed = True
