"""What the pipeline hands to sinks for each processed frame."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from perception.detection.types import Detections


@dataclass
class PerceptionResult:
    """Per-frame output of ``Perceiver.process``.

    stamp_ns, frame_id, seq: copied from the input frame (so outputs carry the input stamp).
    detections: boxes in the input image's pixel coordinates.
    features: ``(h, w, C)`` float32 stride-8 dense features (one pixel per feature cell), C-contiguous.
    pca: ``(h, w, 3)`` uint8 RGB picture of the features (first three principal components), or None.
    overlay: ``(H, W, 3)`` uint8 RGB input with boxes and ids drawn, or None.
    global_embedding: ``(D,)`` float32.
    timings_ms: stage name -> milliseconds (preprocess, encoder, detection, visualise, total).
    """

    stamp_ns: int
    frame_id: str
    seq: int
    detections: Detections
    features: np.ndarray | None = None
    pca: np.ndarray | None = None
    overlay: np.ndarray | None = None
    global_embedding: np.ndarray | None = None
    keyframe: bool = False
    timings_ms: dict = field(default_factory=dict)
