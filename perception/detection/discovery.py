"""Class-agnostic object discovery from motion and from dense features, on the stride-8 feature grid.

Per frame:
1. Motion: camera-motion-compensated frame difference (:class:`~perception.detection.motion.MotionEvidence`),
   joined while the camera stands still by background subtraction
   (:class:`~perception.detection.background.StillCameraBackground`, ``still_background``), averaged over each grid
   cell (the fraction of the cell that moves independently of the camera).
2. Saliency: distance of each cell's feature to the scene's running feature statistics
   (:class:`~perception.detection.saliency.FeatureSaliency`), on the encoder's dense map or, without one, on
   colour features of the image.
3. Score per cell ``motion_weight * motion + (1 - motion_weight) * saliency``; cells above ``score_threshold``
   are foreground.
4. Instances: connected components of foreground cells (4-neighbours), where two neighbours join only if their
   whitened features have cosine similarity above ``group_similarity``: a feature-refined connected components
   grouping in the spirit of graph-based segmentation (Felzenszwalb and Huttenlocher, IJCV 2004) on the grid.
5. Boxes: the component's cells, tightened to the moving pixels inside when the component moves; score the mean
   cell score; then ``min_area``, greedy NMS at ``nms_iou`` and the ``max_detections`` best.

The detector keeps temporal state (previous frame, feature statistics); ``reset()`` forgets it. On the first
frame there is no motion evidence and only saliency counts.

Cost: once the background model of a still camera has settled (``STILL_SETTLE`` frames), the boxes come from
background subtraction alone, so a frame there only checks that the camera is still (a sparse 48-point LK grid,
the full grid when that check is not clear), keeps the motion noise level current and runs the background model;
the feature statistics wait until the camera moves. Measured on vtest.avi (640x480, 128 x 60 x 80 features from the
shipped checkpoint, 190 frames, one BLAS thread, a loaded 2-core machine, process CPU time, same inputs and run):
15.6 to 21.4 ms a frame before these shortcuts and the vectorised tracker, 6.0 to 6.5 ms after, with the same
boxes, scores and track ids (``bench/heads_speed.py`` measures it).
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np
from scipy.ndimage import binary_fill_holes

from perception.config import DetectorConfig
from perception.detection.background import StillCameraBackground
from perception.detection.boxes import clip_boxes, nms
from perception.detection.grouping import grid_components, split_by_appearance
from perception.detection.motion import MotionEvidence
from perception.detection.saliency import FeatureSaliency, colour_grid_features, dense_to_grid
from perception.detection.types import Detections

STRIDE = 8
STILL_SETTLE = 10  # frames the background model learns after the camera stops before its objects are used
STILL_MIN_AREA = 50  # pixels (full resolution) of a still-camera object
STILL_AREA = 1500.0  # pixels: the area scale of a still-camera object's score


def _replicate_border(cells: np.ndarray, ring: int) -> np.ndarray:
    """Replace the outer ``ring`` cells by their inner neighbours: zero-padded convolutions make border features
    stand out from the scene statistics for no reason in the image."""
    h, w = cells.shape
    if ring <= 0 or h <= 2 * ring or w <= 2 * ring:
        return cells
    inner = cells[ring:h - ring, ring:w - ring]
    return np.pad(inner, ring, mode="edge")


@dataclass(frozen=True)
class Prepared:
    """``ObjectDiscovery.prepare``'s result for one frame: the motion evidence (None on a first frame) and, when a
    settled still camera's background model serves the frame, its objects (the feature half then has nothing to
    add)."""

    evidence: np.ndarray | None
    still_objects: Detections | None


class ObjectDiscovery:
    """Discovers objects without classes: ``detect(image, dense) -> Detections`` (``class_ids`` ``"object"``)."""

    def __init__(self, cfg: DetectorConfig | None = None) -> None:
        self.cfg = cfg or DetectorConfig()
        self.motion = MotionEvidence(scale=self.cfg.motion_scale, threshold=self.cfg.motion_threshold)
        self.saliency = FeatureSaliency(components=self.cfg.saliency_components, momentum=self.cfg.saliency_momentum)
        self.background = StillCameraBackground(self.cfg.motion_scale) if self.cfg.still_background else None
        self.frames_still = 0
        self._stats_stale = False  # the still path skipped the saliency statistics: restart them on the next frame
        self.last_score_map: np.ndarray | None = None  # (h, w) cell scores of the last frame, for debugging views
        self.last_features: np.ndarray | None = None  # (h, w, k) whitened cell features of the last frame

    def reset(self) -> None:
        self.motion.reset()
        self.saliency.reset()
        if self.background is not None:
            self.background.reset()
        self.frames_still = 0
        self._stats_stale = False
        self.last_score_map, self.last_features = None, None

    def prepare(self, image: np.ndarray) -> Prepared:
        """The image-only half of ``detect`` for the next frame: motion evidence and, for a still camera, the
        background model (and its objects once it has settled). It keeps the motion and background state, so frames
        must be prepared in order, but it shares no state with the feature half: ``Perceiver`` runs it on the frame
        while the encoder works, then ``detect(image, dense, prepared)`` finishes the frame."""
        if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
            raise ValueError(f"ObjectDiscovery.detect: image must be (H, W, 3) uint8, got {image.shape} {image.dtype}")
        height, width = image.shape[:2]
        settled = self.background is not None and self.frames_still >= STILL_SETTLE
        # a settled still camera: a cheap sparse motion check first (half the still test's threshold, so only a
        # clearly still camera skips the full grid)
        evidence = self.motion.update(image, 0.5 * self.background.still_px if settled else None)
        if evidence is not None and self.background is not None:  # still camera: whole silhouettes, paused objects
            still = self.background.update(image, self.motion.transform)
            if still is not None and self.frames_still >= STILL_SETTLE:
                self.frames_still += 1
                return Prepared(evidence, self._still_objects(still, (width, height)))
            self.frames_still = 0 if still is None else self.frames_still + 1
            if still is not None:
                if still.shape != evidence.shape:
                    still = cv2.resize(still, evidence.shape[::-1], interpolation=cv2.INTER_NEAREST)
                evidence = np.maximum(evidence, still)
        return Prepared(evidence, None)

    def detect(self, image: np.ndarray, dense: object | None = None, prepared: Prepared | None = None) -> Detections:
        """Objects in ``image`` ((H, W, 3) uint8 RGB), using ``dense`` ((C, H/8, W/8) features) when given;
        ``prepared``: ``prepare(image)`` already run for this frame (else it runs here)."""
        if prepared is None:
            prepared = self.prepare(image)
        if prepared.still_objects is not None:
            # the saliency model is not used on these frames: its statistics are not updated (2 ms a frame on
            # 4800 cells x 128 channels) and restart from the first frame after the camera moves again
            self._stats_stale = True
            self.last_score_map, self.last_features = None, None
            return prepared.still_objects
        height, width = image.shape[:2]
        if dense is None:
            grid = colour_grid_features(image, (max(1, height // STRIDE), max(1, width // STRIDE)))
        else:
            grid = dense_to_grid(dense)
        gh, gw = grid.shape[:2]
        cell_w, cell_h = width / gw, height / gh
        background = None
        if self.last_score_map is not None and self.last_score_map.shape == (gh, gw):
            background = self.last_score_map < 0.5 * self.cfg.score_threshold
        evidence = prepared.evidence
        if self._stats_stale:
            self.saliency.reset()
            self._stats_stale = False
        saliency, white = self.saliency(grid, background)
        saliency = _replicate_border(saliency, self.cfg.saliency_border)
        if self.cfg.saliency_smooth > 1:  # single noisy cells are not objects
            saliency = cv2.blur(saliency, (self.cfg.saliency_smooth,) * 2)
        motion = np.zeros_like(saliency)
        if evidence is not None:
            motion = np.clip(2.0 * cv2.resize(evidence, (gw, gh), interpolation=cv2.INTER_AREA), 0, 1)
        weight = self.cfg.motion_weight if evidence is not None else 0.0
        score = weight * motion + (1.0 - weight) * saliency
        self.last_score_map, self.last_features = score, white
        mask = score > self.cfg.score_threshold
        if self.cfg.close_cells > 0:  # join fragments (edges of uniform objects) and fill their interiors
            kernel = np.ones((2 * self.cfg.close_cells + 1,) * 2, np.uint8)
            mask = cv2.morphologyEx(mask.astype(np.uint8), cv2.MORPH_CLOSE, kernel).astype(bool)
            mask = binary_fill_holes(mask)
        labels = grid_components(mask, white, self.cfg.group_similarity)
        if self.cfg.split_depth > 0:
            labels = split_by_appearance(labels, white, self.cfg.split_min_cells, self.cfg.split_coherence,
                                         self.cfg.split_depth)
        return self._boxes(labels, score, evidence, (cell_w, cell_h), (width, height))

    def _still_objects(self, still: np.ndarray, size: tuple[int, int]) -> Detections:
        """Objects of a still camera: 8-connected components of the background-subtraction foreground (at its
        reduced resolution, so touching grid cells do not merge neighbours), boxed at full resolution; score
        ``1 - exp(-area / STILL_AREA)`` (larger silhouettes are surer), ``min_area`` and NMS as for the grid."""
        count, _, stats, _ = cv2.connectedComponentsWithStats(still.astype(np.uint8), connectivity=8)
        stats = stats[1:count].astype(np.float64)
        sx, sy = size[0] / still.shape[1], size[1] / still.shape[0]
        boxes = stats[:, :4] * np.array([sx, sy, sx, sy])
        area = stats[:, 4] * sx * sy
        keep = area >= max(self.cfg.min_area, STILL_MIN_AREA)
        boxes, scores = boxes[keep], 1.0 - np.exp(-area[keep] / STILL_AREA)
        order = nms(boxes, scores, self.cfg.nms_iou)[: self.cfg.max_detections]
        return Detections(boxes=boxes[order].astype(np.float32), scores=scores[order].astype(np.float32),
                          track_ids=np.full(order.size, -1, np.int64), class_ids=["object"] * int(order.size))

    def _boxes(self, labels: np.ndarray, score: np.ndarray, evidence: np.ndarray | None,
               cell: tuple[float, float], size: tuple[int, int]) -> Detections:
        count = int(labels.max()) + 1 if labels.size else 0
        if count == 0:
            return Detections.empty()
        flat = labels.ravel()
        fg = flat >= 0
        ys, xs = np.divmod(np.flatnonzero(fg), labels.shape[1])
        ids = flat[fg]
        x0 = np.full(count, np.inf)
        y0 = np.full(count, np.inf)
        x1 = np.full(count, -np.inf)
        y1 = np.full(count, -np.inf)
        np.minimum.at(x0, ids, xs)
        np.minimum.at(y0, ids, ys)
        np.maximum.at(x1, ids, xs + 1)
        np.maximum.at(y1, ids, ys + 1)
        cells = np.bincount(ids, minlength=count)
        scores = np.bincount(ids, weights=score.ravel()[fg], minlength=count) / cells
        boxes = np.stack([x0 * cell[0], y0 * cell[1], (x1 - x0) * cell[0], (y1 - y0) * cell[1]], axis=1)
        if evidence is not None:
            boxes = self._tighten(boxes, evidence, size)
        boxes = clip_boxes(boxes, *size)
        keep = (boxes[:, 2] * boxes[:, 3] >= self.cfg.min_area) & (cells >= self.cfg.min_cells)
        boxes, scores = boxes[keep], scores[keep]
        order = nms(boxes, scores, self.cfg.nms_iou)[: self.cfg.max_detections]
        return Detections(
            boxes=boxes[order].astype(np.float32),
            scores=np.clip(scores[order], 0, 1).astype(np.float32),
            track_ids=np.full(order.size, -1, np.int64),
            class_ids=["object"] * int(order.size),
        )

    def _tighten(self, boxes: np.ndarray, evidence: np.ndarray, size: tuple[int, int]) -> np.ndarray:
        """Shrink each cell box to the moving pixels inside it (grown by one cell) when enough of them move."""
        eh, ew = evidence.shape
        sx, sy = ew / size[0], eh / size[1]
        moving = evidence > 0.5
        out = boxes.copy()
        for i, (x, y, w, h) in enumerate(boxes):
            ax0 = max(0, int((x - STRIDE) * sx))
            ay0 = max(0, int((y - STRIDE) * sy))
            ax1 = min(ew, int(np.ceil((x + w + STRIDE) * sx)))
            ay1 = min(eh, int(np.ceil((y + h + STRIDE) * sy)))
            patch = moving[ay0:ay1, ax0:ax1]
            if patch.sum() < self.cfg.min_area * sx * sy:
                continue
            rows = np.flatnonzero(patch.any(axis=1))
            cols = np.flatnonzero(patch.any(axis=0))
            out[i] = [(ax0 + cols[0]) / sx, (ay0 + rows[0]) / sy, (cols[-1] - cols[0] + 1) / sx,
                      (rows[-1] - rows[0] + 1) / sy]
        return out
