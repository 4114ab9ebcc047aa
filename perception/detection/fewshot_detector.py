"""``FewShotDetector``: the ``"fewshot"`` detector method, a learnt few-shot head plus foreground and tracking.

``DetectorConfig.fewshot_head`` names the head (``HEAD.safetensors`` with ``HEAD.json``, from
``dualstream fewshot fit``). Per frame: foreground from MOG2 (primed on the first frame with the background the
head saw in its labelled frames, when the frame has the same aspect ratio) -> the head's windows and scores on the
frame and the encoder's dense map -> detections at or above ``min_score`` (default: the head's threshold) ->
:class:`~perception.detection.tracker.IoUTracker` ids. ``reset()`` forgets the background and the tracks.

With ``calibrate`` (``set_calibration(True)``; the perceiver turns it on for a stream that adapts online, the
adaptation benchmark for its adaptive methods, both off again while the adapter's guard has fallen back to the
source model, so that stream is served exactly as without adaptation) every frame first goes through a
:class:`~perception.adaptation.frame_calibration.FrameCalibrator` referenced to the head's background: the
foreground, static and colour cues then compare frames in the photometry of the background they were fitted on
(under a global illumination change or sensor noise they otherwise call the whole frame foreground). Off, or within
the calibrator's band on an unchanged camera, the frame is used as given.
"""

from __future__ import annotations

import cv2
import numpy as np

from perception.adaptation.frame_calibration import FrameCalibrator
from perception.config import ConfigError, DetectorConfig
from perception.detection.fewshot import FewShotHead, load_head
from perception.detection.foreground import ForegroundModel, StaticBackground, boxes_mask
from perception.detection.tracker import IoUTracker
from perception.detection.types import Detections


TEMPORAL = 0.0  # off: measured worse on PETS (AP50 0.58 at 0.6 against 0.64 off, 200 frames)
NEW_TRACK_PRIOR = 0.5
STATIC_RATE = 0.002  # selective background update per frame: slow, so that people who stand still stay foreground


class FewShotDetector:
    """``detect(image (H, W, 3) uint8 RGB, dense (C, H/8, W/8) | None) -> Detections`` of the head's class."""

    def __init__(self, cfg: DetectorConfig, head: FewShotHead | None = None, min_score: float | None = None,
                 calibrate: bool = False) -> None:
        if head is None:
            if not cfg.fewshot_head:
                raise ConfigError("detector.fewshot_head: method 'fewshot' needs a head file "
                                  "(make one with `dualstream fewshot fit`)")
            try:
                head = load_head(cfg.fewshot_head)
            except (FileNotFoundError, ValueError) as exc:
                raise ConfigError(f"detector.fewshot_head: {exc}") from exc
        self.cfg, self.head = cfg, head
        self.min_score = float(head.meta.get("threshold", 0.5)) if min_score is None else min_score
        self.class_name = str(head.meta.get("classes", ["object"])[0])
        self.foreground = ForegroundModel()
        self.tracker = IoUTracker(cfg.track_iou, cfg.track_max_misses, 0.0)
        self.last_foreground: np.ndarray | None = None
        self.static: StaticBackground | None = None
        self.uses_static = "static" in head.map_names
        self.union = bool(head.meta.get("foreground_union", False)) and self.uses_static
        self.update_threshold = float(head.meta.get("threshold", 0.5))
        self.temporal = float(head.meta.get("temporal", TEMPORAL))
        self._track_scores: dict[int, float] = {}
        self.calibrator: FrameCalibrator | None = None
        self.set_calibration(calibrate)

    def set_calibration(self, on: bool) -> bool:
        """Calibrate frames to the head's background from the next frame on (see the module docstring); a head
        without a background has no reference, so nothing changes. True when calibration is on afterwards."""
        background = self.head.background
        if not on or background is None:
            self.calibrator = None
        elif self.calibrator is None:
            self.calibrator = FrameCalibrator(np.ascontiguousarray(background, np.uint8))
        return self.calibrator is not None

    def reset(self) -> None:
        self.foreground.reset()
        self.tracker.reset()
        self.last_foreground = None
        self.static = None
        self._track_scores = {}
        if self.calibrator is not None:
            self.calibrator.reset()

    def reset_tracks(self) -> None:
        """Forget the tracks only (the background model and the frame calibration stay)."""
        self.tracker.reset()
        self._track_scores = {}

    def _prime(self, image: np.ndarray) -> None:
        background = self.head.background
        h, w = image.shape[:2]
        if background is not None and abs(background.shape[1] / background.shape[0] - w / h) <= 0.02:
            if background.shape[:2] != (h, w):
                background = cv2.resize(background, (w, h), interpolation=cv2.INTER_AREA)
            self.foreground.prime(background)
        else:
            background = image
        rate = float(self.head.meta.get("static_rate", STATIC_RATE))
        self.static = StaticBackground(background, rate=rate) if self.uses_static else None

    def detect(self, image: np.ndarray, dense: object | None = None) -> Detections:
        if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
            raise ValueError(f"FewShotDetector.detect: image must be (H, W, 3) uint8, got {image.shape} {image.dtype}")
        if self.calibrator is not None:
            image = self.calibrator(image)
        if not self.foreground.primed:
            self._prime(image)
            self.foreground.primed = True
        maps = {"foreground": self.foreground(image)}
        if self.static is not None:
            maps["static"] = self.static.difference(image)
            if self.union:  # people who stand still fade from MOG2 but not from the selective background
                maps["foreground"] = np.maximum(maps["foreground"], maps["static"])
        self.last_foreground = maps["foreground"]
        boxes, scores = self.head.detect(image, maps, dense, min_score=self.min_score,
                                         max_detections=self.cfg.max_detections)
        if self.static is not None:
            self.static.update(image, boxes_mask(image.shape[:2], boxes[scores >= self.update_threshold], 0.1))
        dets = Detections(boxes.astype(np.float32), scores.astype(np.float32), np.full(len(scores), -1, np.int64),
                          [self.class_name] * len(scores))
        tracked = self.tracker.update(dets)
        return self._smooth(tracked) if self.temporal > 0 else tracked

    def _smooth(self, dets: Detections) -> Detections:
        """Score = running average of the track's scores (weight ``temporal`` on the past; a new track starts
        from ``NEW_TRACK_PRIOR`` times its first score): a person is seen on many frames, most false alarms on few."""
        scores = dets.scores.astype(np.float64).copy()
        seen: dict[int, float] = {}
        for i, track_id in enumerate(dets.track_ids):
            past = self._track_scores.get(int(track_id))
            start = NEW_TRACK_PRIOR * scores[i] if past is None else past
            scores[i] = self.temporal * start + (1 - self.temporal) * scores[i]
            seen[int(track_id)] = scores[i]
        self._track_scores = seen | {k: v for k, v in self._track_scores.items()
                                     if k not in seen and any(t.track_id == k for t in self.tracker.tracks)}
        return Detections(dets.boxes, scores.astype(np.float32), dets.track_ids, dets.class_ids)
