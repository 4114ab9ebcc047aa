"""Detections as arrays, the format every detector, tracker, metric and sink exchanges."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


@dataclass
class Detections:
    """N detections in one image, pixel coordinates of the image they were detected in.

    boxes: ``(N, 4)`` float32 ``x, y, w, h`` (top-left corner, width, height).
    scores: ``(N,)`` float32 in [0, 1] (higher is more confident).
    track_ids: ``(N,)`` int64, ``-1`` when not tracked.
    class_ids: N strings (``"object"`` for class-agnostic detections).
    """

    boxes: np.ndarray = field(default_factory=lambda: np.zeros((0, 4), np.float32))
    scores: np.ndarray = field(default_factory=lambda: np.zeros((0,), np.float32))
    track_ids: np.ndarray = field(default_factory=lambda: np.zeros((0,), np.int64))
    class_ids: list[str] = field(default_factory=list)

    def __len__(self) -> int:
        return int(self.boxes.shape[0])

    @staticmethod
    def empty() -> "Detections":
        return Detections()

    def select(self, index: np.ndarray) -> "Detections":
        index = np.asarray(index)
        if index.dtype == bool:
            index = np.flatnonzero(index)
        return Detections(
            boxes=self.boxes[index].astype(np.float32, copy=False),
            scores=self.scores[index].astype(np.float32, copy=False),
            track_ids=self.track_ids[index].astype(np.int64, copy=False),
            class_ids=[self.class_ids[int(i)] for i in index],
        )

    def to_list(self) -> list[dict]:
        """JSON-friendly list of ``{"box": [x, y, w, h], "score", "track_id", "class_id"}``."""
        return [
            {
                "box": [float(v) for v in self.boxes[i]],
                "score": float(self.scores[i]),
                "track_id": int(self.track_ids[i]),
                "class_id": self.class_ids[i],
            }
            for i in range(len(self))
        ]
