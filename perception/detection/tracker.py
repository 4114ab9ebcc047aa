"""Multi-object tracking by detection: box overlap plus optional appearance, Hungarian assignment, constant velocity.

Follows SORT (Bewley et al., "Simple Online and Realtime Tracking", ICIP 2016) with DeepSORT's appearance term
(Wojke et al., ICIP 2017): each frame, tracks are predicted with a constant-velocity model, matched to detections
by ``scipy.optimize.linear_sum_assignment`` on ``(1 - feature_weight) * overlap + feature_weight * appearance``,
gated by ``overlap >= iou_threshold``. Unmatched detections start new ids; tracks unmatched for more than
``max_misses`` frames end.

Occlusion handling: a track keeps the *full* extent of its object. When a detection is much narrower (or shorter)
than the track, the object is taken as partly hidden or clipped: the full box is re-anchored on the detection edge
that is nearer to its prediction, and the size is kept. Velocity comes from the full box, so it is not halved
while an object slides behind an occluder (the visible box's centre moves at half speed then). Overlap is the
larger of IoU and :func:`partial_overlap` (the visible part keeps one edge of the full box); for a lost track also
half the containment of the detection in its predicted box, grown by 15 percent per side and by one pixel per
missed frame and unit of speed, so an object re-emerging from behind an occluder finds its track again.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.optimize import linear_sum_assignment

from perception.detection.boxes import containment_matrix, iou_matrix
from perception.detection.types import Detections

PARTIAL = 0.8  # a detection narrower than this share of the track's extent is a partial view on that axis
SHRINK_RATE = 0.3  # how fast the track's extent follows a detection shorter than it but not a partial view
LOST_PAD = 0.15  # a lost track's box is grown by this share of its size per side to look for it


def _axis_overlap(a0: np.ndarray, a1: np.ndarray, b0: np.ndarray, b1: np.ndarray) -> np.ndarray:
    """1D IoU of intervals ``[a0, a1]`` and ``[b0, b1]`` (broadcast)."""
    inter = np.maximum(np.minimum(a1, b1) - np.maximum(a0, b0), 0.0)
    union = np.maximum(a1, b1) - np.minimum(a0, b0)
    positive = union > 0
    return np.where(positive, inter / np.where(positive, union, 1.0), 0.0)


def partial_overlap(full: np.ndarray, part: np.ndarray) -> np.ndarray:
    """Pairwise overlap ``(N, M)`` of ``x, y, w, h`` boxes when ``part`` may show only a part of ``full``.

    Per axis, a ``part`` interval shorter than the ``full`` one is compared with the equally long end of the full
    interval at either side (the visible part of an object entering an occluder or the image border keeps one edge
    of the object), taking the best of that and the plain 1D IoU; the result is the product over the two axes.
    """
    out = np.ones((len(full), len(part)))
    for axis in range(2):
        f0, f1 = full[:, None, axis], full[:, None, axis] + full[:, None, axis + 2]
        p0, p1 = part[None, :, axis], part[None, :, axis] + part[None, :, axis + 2]
        length = p1 - p0
        best = _axis_overlap(f0, f1, p0, p1)
        shorter = length < (f1 - f0)
        best = np.where(shorter, np.maximum(best, _axis_overlap(f0, f0 + length, p0, p1)), best)
        best = np.where(shorter, np.maximum(best, _axis_overlap(f1 - length, f1, p0, p1)), best)
        out *= best
    return out


@dataclass
class Track:
    """One tracked object: full box as edges ``x0, y0, x1, y1``, centre velocity ``vx, vy`` in pixels per frame."""

    track_id: int
    edges: np.ndarray
    velocity: np.ndarray
    embedding: np.ndarray | None = None
    hits: int = 1
    misses: int = 0

    def predicted(self, pad: float | None = None) -> np.ndarray:
        """``x, y, w, h`` of the box at the next frame; with ``pad``, the search region of a lost track: grown by
        ``pad`` of its size and by one pixel per missed frame and unit of speed on each side."""
        step = self.velocity * (self.misses + 1)
        x0, y0, x1, y1 = self.edges + np.concatenate([step, step])
        grow = np.zeros(2)
        if pad is not None:
            grow = self.misses * (1.0 + np.abs(self.velocity)) + pad * np.array([x1 - x0, y1 - y0])
        return np.array([x0 - grow[0], y0 - grow[1], x1 - x0 + 2 * grow[0], y1 - y0 + 2 * grow[1]])


def _predicted_boxes(edges: np.ndarray, velocity: np.ndarray, misses: np.ndarray,
                     pad: float | None = None) -> np.ndarray:
    """``Track.predicted`` for all tracks at once: ``edges`` (T, 4), ``velocity`` (T, 2), ``misses`` (T,) int ->
    ``(T, 4)`` ``x, y, w, h`` (the same arithmetic, so the same values, without a Python call per track)."""
    step = velocity * (misses + 1)[:, None]
    moved = edges + np.concatenate([step, step], axis=1)
    x0, y0, x1, y1 = moved.T
    if pad is None:
        return np.stack([x0, y0, x1 - x0, y1 - y0], axis=1)
    grow = misses[:, None] * (1.0 + np.abs(velocity)) + pad * np.stack([x1 - x0, y1 - y0], axis=1)
    return np.stack([x0 - grow[:, 0], y0 - grow[:, 1], x1 - x0 + 2 * grow[:, 0], y1 - y0 + 2 * grow[:, 1]], axis=1)


def _update_axis(pred: np.ndarray, det: np.ndarray) -> np.ndarray:
    """New ``(lo, hi)`` of the full box on one axis from the predicted and detected ``(lo, hi)``.

    A detection at least as long as the track is taken as is. A shorter one is taken as a partial view: the full
    extent is kept (following a mild shrink slowly, since objects also shrink by moving away) and anchored on the
    visible edge, the one nearer to its prediction (the hidden edge stays where the occluder or image border is).
    """
    extent, det_extent = pred[1] - pred[0], det[1] - det[0]
    if det_extent >= extent:
        return det.copy()
    if det_extent >= PARTIAL * extent:
        extent += SHRINK_RATE * (det_extent - extent)
    if abs(det[0] - pred[0]) <= abs(det[1] - pred[1]):  # the low edge is seen, the high edge hidden
        return np.array([det[0], det[0] + extent])
    return np.array([det[1] - extent, det[1]])


class IoUTracker:
    """Assigns stable ``track_ids`` to per-frame detections; ``update`` once per frame, ``reset`` between videos."""

    def __init__(self, iou_threshold: float = 0.3, max_misses: int = 5, feature_weight: float = 0.3,
                 velocity_smoothing: float = 0.3, embedding_momentum: float = 0.8) -> None:
        if not 0 <= feature_weight <= 1:
            raise ValueError(f"IoUTracker: feature_weight {feature_weight} (expected 0..1)")
        self.iou_threshold = iou_threshold
        self.max_misses = max_misses
        self.feature_weight = feature_weight
        self.velocity_smoothing = velocity_smoothing
        self.embedding_momentum = embedding_momentum
        self.tracks: list[Track] = []
        self._next_id = 1

    def reset(self) -> None:
        self.tracks, self._next_id = [], 1

    def _similarity(self, boxes: np.ndarray, embeddings: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
        """Score and overlap matrices ``(tracks, detections)``."""
        edges = np.stack([t.edges for t in self.tracks])
        velocity = np.stack([t.velocity for t in self.tracks])
        misses_int = np.array([t.misses for t in self.tracks], np.int64)
        predicted = _predicted_boxes(edges, velocity, misses_int)
        lost = misses_int > 0
        overlap = np.maximum(iou_matrix(predicted, boxes), partial_overlap(predicted, boxes))
        if lost.any():  # a lost object may re-emerge anywhere in its grown box, seen in part
            grown = _predicted_boxes(edges[lost], velocity[lost], misses_int[lost], LOST_PAD)
            overlap[lost] = np.maximum(overlap[lost], 0.5 * containment_matrix(grown, boxes))
        score = overlap.copy()
        if embeddings is not None and self.feature_weight > 0:
            appearance = np.zeros_like(overlap)
            for i, track in enumerate(self.tracks):
                if track.embedding is not None:
                    appearance[i] = 0.5 * (1.0 + embeddings @ track.embedding)
                else:
                    appearance[i] = overlap[i]
            score = (1 - self.feature_weight) * overlap + self.feature_weight * appearance
        return score - 1e-3 * misses_int.astype(np.float64)[:, None], overlap

    def update(self, dets: Detections, embeddings: np.ndarray | None = None) -> Detections:
        """Match ``dets`` to the tracks, update them and return a copy of ``dets`` with ``track_ids`` filled."""
        boxes = np.asarray(dets.boxes, np.float64).reshape(-1, 4)
        if embeddings is not None:
            embeddings = np.asarray(embeddings, np.float64).reshape(len(boxes), -1)
            embeddings = embeddings / (np.linalg.norm(embeddings, axis=1, keepdims=True) + 1e-12)
        ids = np.full(len(boxes), -1, np.int64)
        matched_tracks: set[int] = set()
        if self.tracks and len(boxes):
            score, overlap = self._similarity(boxes, embeddings)
            rows, cols = linear_sum_assignment(-score)
            for r, c in zip(rows, cols):
                if overlap[r, c] >= self.iou_threshold:
                    self._correct(self.tracks[r], boxes[c], None if embeddings is None else embeddings[c])
                    ids[c] = self.tracks[r].track_id
                    matched_tracks.add(r)
        survivors = []
        for i, track in enumerate(self.tracks):
            if i not in matched_tracks:
                track.misses += 1
            if track.misses <= self.max_misses:
                survivors.append(track)
        self.tracks = survivors
        for c in np.flatnonzero(ids < 0):
            x, y, w, h = boxes[c]
            emb = None if embeddings is None else embeddings[c].copy()
            edges = np.array([x, y, x + w, y + h])
            self.tracks.append(Track(self._next_id, edges, np.zeros(2), emb))
            ids[c] = self._next_id
            self._next_id += 1
        return Detections(dets.boxes.astype(np.float32), dets.scores.astype(np.float32), ids, list(dets.class_ids))

    def _correct(self, track: Track, box: np.ndarray, embedding: np.ndarray | None) -> None:
        """Update a matched track with its detection ``box`` (x, y, w, h)."""
        gap = track.misses + 1
        pred = track.edges + np.concatenate([track.velocity, track.velocity]) * gap
        det = np.array([box[0], box[1], box[0] + box[2], box[1] + box[3]])
        new = np.empty(4)
        for axis in range(2):
            sel = [axis, axis + 2]
            new[sel] = _update_axis(pred[sel], det[sel])
        moved = ((new[:2] + new[2:]) - (track.edges[:2] + track.edges[2:])) / (2.0 * gap)
        a = self.velocity_smoothing if track.hits > 1 else 1.0
        track.velocity = a * moved + (1 - a) * track.velocity
        track.edges = new
        track.hits += 1
        track.misses = 0
        if embedding is not None:
            if track.embedding is None:
                track.embedding = embedding.copy()
            else:
                m = self.embedding_momentum
                mixed = m * track.embedding + (1 - m) * embedding
                track.embedding = mixed / (np.linalg.norm(mixed) + 1e-12)


Tracker = IoUTracker
