"""The frame type every source yields and the ``FrameSource`` protocol."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Iterator, Protocol, runtime_checkable

import numpy as np


@dataclass
class Frame:
    """One decoded image.

    image: ``(H, W, 3)`` uint8 RGB, C-contiguous.
    stamp_ns: capture time in nanoseconds (source clock: file position for files, wall clock for live sources).
    frame_id: the optical frame of the camera (REP 103 ``*_optical_frame`` convention).
    seq: 0-based index of the frame in its source.
    boxes: optional ground truth ``(N, 4)`` float32 ``x, y, w, h`` in pixels (synthetic scene and labelled sets).
    track_ids: optional ``(N,)`` int64 identities for ``boxes``.
    """

    image: np.ndarray
    stamp_ns: int
    frame_id: str = "camera_optical_frame"
    seq: int = 0
    boxes: np.ndarray | None = None
    track_ids: np.ndarray | None = None
    meta: dict = field(default_factory=dict)

    @property
    def height(self) -> int:
        return int(self.image.shape[0])

    @property
    def width(self) -> int:
        return int(self.image.shape[1])


class SourceError(RuntimeError):
    """A source could not be opened or read; the message names the source and what was wrong."""


@runtime_checkable
class FrameSource(Protocol):
    """Anything that yields frames. Sources are iterables and context managers.

    ``fps`` is the nominal rate (``None`` when unknown); ``size`` is ``(width, height)`` when known.
    """

    name: str
    fps: float | None

    def __iter__(self) -> Iterator[Frame]: ...

    def close(self) -> None: ...
