"""Detectors by name: ``build_detector(cfg)`` looks ``cfg.method`` up in ``DETECTORS`` and builds it.

Every detector has the same small interface (:class:`Detector`): ``detect(image, dense) -> Detections`` with
``track_ids`` filled, and ``reset()`` between videos; one may add ``prepare(image)``, the image-only part of the
next frame's work, which ``Perceiver`` runs while the encoder works and hands to ``detect(..., prepared=)``. ``"discovery"`` is class-agnostic discovery
(:class:`~perception.detection.discovery.ObjectDiscovery`) followed by the tracker
(:class:`~perception.detection.tracker.IoUTracker`), whose appearance term uses the mean whitened feature of the
grid cells under each box. A later method (few-shot prototypes) registers itself with :func:`register_detector`.
"""

from __future__ import annotations

from typing import Callable, Protocol

import numpy as np

from perception.config import DetectorConfig
from perception.detection.discovery import ObjectDiscovery
from perception.detection.tracker import IoUTracker
from perception.detection.types import Detections


class Detector(Protocol):
    """What the pipeline calls once per frame."""

    def detect(self, image: np.ndarray, dense: object | None = None) -> Detections: ...

    def reset(self) -> None: ...


def box_embeddings(features: np.ndarray, boxes: np.ndarray, image_size: tuple[int, int]) -> np.ndarray:
    """``(N, k)`` mean of the grid ``features`` ``(h, w, k)`` over the cells under each ``x, y, w, h`` box."""
    h, w, k = features.shape
    sx, sy = w / image_size[0], h / image_size[1]
    out = np.zeros((len(boxes), k), np.float32)
    for i, (x, y, bw, bh) in enumerate(boxes):
        x0, y0 = int(np.clip(np.floor(x * sx), 0, w - 1)), int(np.clip(np.floor(y * sy), 0, h - 1))
        x1, y1 = int(np.clip(np.ceil((x + bw) * sx), x0 + 1, w)), int(np.clip(np.ceil((y + bh) * sy), y0 + 1, h))
        out[i] = features[y0:y1, x0:x1].reshape(-1, k).mean(axis=0)
    return out


class DiscoveryDetector:
    """Object discovery from motion and features, with tracking across frames."""

    def __init__(self, cfg: DetectorConfig) -> None:
        self.cfg = cfg
        self.discovery = ObjectDiscovery(cfg)
        self.tracker = IoUTracker(cfg.track_iou, cfg.track_max_misses, cfg.track_feature_weight)

    def prepare(self, image: np.ndarray) -> object:
        """The image-only half of the next frame's ``detect`` (``ObjectDiscovery.prepare``): frames in order, and it
        may run while the previous frame's ``detect`` does (the two share no state)."""
        return self.discovery.prepare(image)

    def detect(self, image: np.ndarray, dense: object | None = None, prepared: object | None = None) -> Detections:
        dets = self.discovery.detect(image, dense, prepared)
        embeddings = None
        features = self.discovery.last_features
        if features is not None and len(dets):
            embeddings = box_embeddings(features, dets.boxes, (image.shape[1], image.shape[0]))
        return self.tracker.update(dets, embeddings)

    def reset(self) -> None:
        self.discovery.reset()
        self.tracker.reset()


def _fewshot_detector(cfg: DetectorConfig) -> Detector:
    """The few-shot head method (imported on use): ``cfg.fewshot_head`` names the head file."""
    from perception.detection.fewshot_detector import FewShotDetector  # noqa: PLC0415

    return FewShotDetector(cfg)


DETECTORS: dict[str, Callable[[DetectorConfig], Detector]] = {"discovery": DiscoveryDetector,
                                                               "fewshot": _fewshot_detector}


def register_detector(name: str, factory: Callable[[DetectorConfig], Detector]) -> None:
    """Make ``factory(cfg)`` available as ``cfg.method == name``; a name is registered once."""
    if name in DETECTORS:
        raise ValueError(f"detector '{name}' is already registered")
    DETECTORS[name] = factory


def build_detector(cfg: DetectorConfig | None = None) -> Detector:
    """The detector named by ``cfg.method``; an unknown name raises ``ValueError`` listing the known ones."""
    cfg = cfg or DetectorConfig()
    try:
        factory = DETECTORS[cfg.method]
    except KeyError:
        known = ", ".join(sorted(DETECTORS))
        raise ValueError(f"detector.method: unknown detector '{cfg.method}' (known: {known})") from None
    return factory(cfg)
