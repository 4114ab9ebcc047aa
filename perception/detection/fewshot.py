"""Few-shot class head on frozen encoder features: what it computes at run time, how it is saved and loaded.

A head learnt from the boxes of a handful of frames (see :mod:`perception.detection.fewshot_fit`) has two parts:

1. A per-cell linear class score on the stride-8 grid (a linear probe on frozen features, as in the DINO and
   DINOv2 evaluations): the encoder's dense features, standardised, plus the cell's mean Lab colour; sigmoid.
2. A window scorer: person-shaped windows from a :class:`~perception.detection.proposals.BoxPrior` learnt from
   the labelled boxes, described by region means of the foreground map (static camera: MOG2, primed with the
   background seen in the labelled frames) and of the cell score map, scored by a small MLP trained to predict
   the window's overlap with a labelled box. Windows failing a cheap first stage (foreground or class score of the
   whole window too low) are not scored. Greedy NMS keeps the best windows; they are tightened to the foreground,
   given the labelled aspect ratio and moved sideways onto the nearest peak of the foreground's column profile
   (:func:`centre_on_profile`: a window spanning two people side by side lands on one of them).

Saved as ``HEAD.safetensors`` (tensors) and ``HEAD.json`` (class names, encoder name and checkpoint hash, feature
config, box prior, thresholds, fit statistics).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np
from safetensors.numpy import load_file, save_file

from perception.detection.boxes import containment_matrix, iou_matrix
from perception.detection.proposals import BoxPrior, candidate_windows, integral, region_mean, window_features
from perception.io.atomic import atomic_write_bytes, write_json

FORMAT = "dualstream-fewshot-head"
FORMAT_VERSION = 1
MAX_NMS_CANDIDATES = 4000
FINAL_NMS_IOU = 0.5  # after boxes are refined and reshaped, two may have become the same box
PROFILE_TOP = 0.5  # centre_on_profile: the share of the box's rows (from its top) whose columns are profiled
PROFILE_SMOOTH = 0.5  # moving-average width of the profile, in box widths
PROFILE_MAX_SHIFT = 0.6  # largest sideways move, in box widths


def lab_cells(image: np.ndarray, grid_hw: tuple[int, int]) -> np.ndarray:
    """``(h, w, 3)`` mean Lab colour of each grid cell of an RGB uint8 image, scaled to about unit range."""
    lab = cv2.cvtColor(image.astype(np.float32) / 255.0, cv2.COLOR_RGB2Lab)
    lab = (lab - np.float32([50.0, 0.0, 0.0])) / np.float32([25.0, 15.0, 15.0])
    return cv2.resize(lab, (grid_hw[1], grid_hw[0]), interpolation=cv2.INTER_AREA)


def dense_to_hwc(dense: object) -> np.ndarray:
    """``(C, h, w)`` torch tensor or numpy array -> ``(h, w, C)`` float32 numpy."""
    arr = dense.detach().float().cpu().numpy() if hasattr(dense, "detach") else np.asarray(dense, np.float32)
    if arr.ndim == 4:
        arr = arr[0]
    if arr.ndim != 3:
        raise ValueError(f"dense features must be (C, h, w), got shape {arr.shape}")
    return np.ascontiguousarray(arr.transpose(1, 2, 0), dtype=np.float32)


def cell_features(image: np.ndarray, dense: object | None, use_encoder: bool) -> np.ndarray:
    """``(h, w, F)``: the encoder's features (when ``use_encoder``), then the cell's Lab colour."""
    if use_encoder:
        if dense is None:
            raise ValueError("this few-shot head was fitted on encoder features but no dense map was given")
        feats = dense_to_hwc(dense)
        return np.concatenate([feats, lab_cells(image, feats.shape[:2])], axis=2)
    height, width = image.shape[:2]
    return lab_cells(image, (max(1, height // 8), max(1, width // 8)))


def _mlp(x: np.ndarray, layers: list[tuple[np.ndarray, np.ndarray]]) -> np.ndarray:
    for i, (w, b) in enumerate(layers):
        x = x @ w + b
        if i < len(layers) - 1:
            x = np.maximum(x, 0.0)
    return x[:, 0]


def whole_window_means(windows: np.ndarray, maps: dict[str, np.ndarray],
                       image_size: tuple[int, int]) -> dict[str, np.ndarray]:
    """Mean of each named map over each whole window (the first stage's numbers)."""
    x, y, w, h = np.asarray(windows, np.float64).T
    return {name: region_mean(integral(m), x, y, x + w, y + h, m.shape[1] / image_size[0])
            for name, m in maps.items()}


def refine_to_foreground(boxes: np.ndarray, foreground: np.ndarray, pad: float = 0.15,
                         share: float = 0.25) -> np.ndarray:
    """Tighten each box to the foreground around it: rows and columns of the box (grown by ``pad``) whose
    foreground count reaches ``share`` of the largest; boxes with little foreground, or whose tightened size is
    far from the window's, are kept as they are."""
    out = np.asarray(boxes, np.float64).copy()
    height, width = foreground.shape
    for k, (x, y, w, h) in enumerate(out):
        x0, x1 = int(max(0, x - pad * w)), int(min(width, x + w + pad * w))
        y0, y1 = int(max(0, y - pad * h / 2)), int(min(height, y + h + pad * h / 2))
        patch = foreground[y0:y1, x0:x1]
        if patch.size == 0 or patch.mean() < 0.1:
            continue
        cols, rows = patch.sum(0), patch.sum(1)
        c = np.flatnonzero(cols >= share * cols.max())
        r = np.flatnonzero(rows >= share * rows.max())
        nw, nh = c[-1] - c[0] + 1.0, r[-1] - r[0] + 1.0
        if 0.6 * w <= nw <= 1.4 * w and 0.75 * h <= nh <= 1.25 * h:
            out[k] = [x0 + c[0], y0 + r[0], nw, nh]
    return out


def _hill_climb(values: np.ndarray, start: int, tol: float = 1e-9) -> int:
    """Index of the local maximum of a 1-D profile reached by steepest ascent from ``start``. A flat stretch is
    crossed towards its higher end (the nearer one when both ends rise equally); a flat top stops the climb."""
    i, n = start, len(values)
    while True:
        v = values[i]
        a, b = i, i
        while a > 0 and abs(values[a - 1] - v) <= tol:
            a -= 1
        while b + 1 < n and abs(values[b + 1] - v) <= tol:
            b += 1
        left = values[a - 1] if a > 0 else -np.inf
        right = values[b + 1] if b + 1 < n else -np.inf
        if max(left, right) <= v + tol:
            return i
        if abs(left - right) <= tol:
            i = a - 1 if i - a <= b - i else b + 1
        else:
            i = a - 1 if left > right else b + 1


def centre_on_profile(boxes: np.ndarray, foreground: np.ndarray, top: float = PROFILE_TOP,
                      smooth: float = PROFILE_SMOOTH, max_shift: float = PROFILE_MAX_SHIFT) -> np.ndarray:
    """Move each box sideways onto the peak of the foreground's column profile under its upper part.

    The profile is the foreground share of each column over the box's top ``top`` of rows (head and shoulders:
    one peak per person, a valley between two people walking side by side), from 1.5 box widths left of the centre
    to 1.5 right, smoothed by a moving average ``smooth`` box widths wide. Steepest ascent from the box's centre
    finds the nearest peak; the box (size kept) is centred there when that is at most ``max_shift`` widths away. A
    box centred between two people thus lands on one of them instead of spanning both."""
    out = np.asarray(boxes, np.float64).copy()
    height, width = foreground.shape
    for k, (x, y, w, h) in enumerate(out):
        cx = x + w / 2
        y0, y1 = int(max(0, y)), int(min(height, y + top * h))
        x0, x1 = int(max(0, cx - 1.5 * w)), int(min(width, cx + 1.5 * w))
        if y1 <= y0 or x1 - x0 < 3:
            continue
        profile = foreground[y0:y1, x0:x1].mean(axis=0)
        kernel = max(1, int(round(smooth * w)))
        profile = np.convolve(profile, np.ones(kernel) / kernel, mode="same")
        start = int(np.clip(round(cx - x0), 0, len(profile) - 1))
        peak = _hill_climb(profile, start)
        if abs(peak - start) <= max_shift * w:
            out[k, 0] = x0 + peak - w / 2
    return out


def greedy_nms(boxes: np.ndarray, scores: np.ndarray, iou_threshold: float, max_keep: int,
               containment: float = 1.0) -> np.ndarray:
    """Greedy NMS (as :func:`perception.detection.boxes.nms`, first ``max_keep`` kept) that loops over the kept
    boxes only: one overlap row per kept box instead of the full matrix, for thousands of dense windows. A box is
    also suppressed when more than ``containment`` of the smaller of the two lies inside the other (the same object
    seen at two window scales has a low IoU but one box inside the other)."""
    order = np.argsort(-np.asarray(scores, np.float64), kind="stable")
    b = np.asarray(boxes, np.float64)[order]
    alive = np.ones(len(b), bool)
    keep: list[int] = []
    while len(keep) < max_keep:
        left = np.flatnonzero(alive)
        if not left.size:
            break
        i = int(left[0])
        keep.append(int(order[i]))
        alive[i] = False
        rest = b[left[1:]]
        alive[left[1:]] &= ((iou_matrix(b[i:i + 1], rest)[0] <= iou_threshold)
                            & (containment_matrix(b[i:i + 1], rest)[0] <= containment))
    return np.asarray(keep, np.int64)


def sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-np.clip(x, -30, 30)))


@dataclass
class FewShotHead:
    """The learnt head (arrays) and its description (``meta``: everything JSON-serialisable)."""

    tensors: dict[str, np.ndarray]
    meta: dict = field(default_factory=dict)

    @property
    def prior(self) -> BoxPrior:
        return BoxPrior.from_dict(self.meta["box_prior"])

    @property
    def use_encoder(self) -> bool:
        return bool(self.meta["features"]["use_encoder"])

    @property
    def background(self) -> np.ndarray | None:
        return self.tensors.get("background")

    def cell_scores(self, image: np.ndarray, dense: object | None) -> np.ndarray:
        """``(h, w)`` class probability per grid cell."""
        feats = cell_features(image, dense, self.use_encoder)
        t = self.tensors
        if feats.shape[2] != t["cell_mean"].shape[0]:
            raise ValueError(f"few-shot head expects {t['cell_mean'].shape[0]} cell features "
                             f"(encoder channels + 3 colour), got {feats.shape[2]}")
        z = (feats - t["cell_mean"]) / t["cell_std"]
        return sigmoid(z @ t["cell_weight"] + t["cell_bias"][0]).astype(np.float32)

    def windows(self, image_size: tuple[int, int]) -> np.ndarray:
        f = self.meta["windows"]
        return candidate_windows(self.prior, image_size, f["step"], tuple(f["scales"]), tuple(f["aspects"]))

    def features(self, windows: np.ndarray, maps: dict[str, np.ndarray], image_size: tuple[int, int]) -> np.ndarray:
        """Window features from the named maps: ``foreground`` and ``static`` (H, W) in {0, 1}, ``cell_score``
        (h, w); foreground maps are averaged to half resolution first."""
        pairs = []
        for name in self.map_names:
            m = maps[name]
            if m.shape[1] == image_size[0]:
                m = cv2.resize(m, (max(1, image_size[0] // 2), max(1, image_size[1] // 2)),
                               interpolation=cv2.INTER_AREA)
            pairs.append((m, m.shape[1] / image_size[0]))
        return window_features(windows, pairs, image_size, self.prior)

    @property
    def map_names(self) -> list[str]:
        return list(self.meta.get("maps", ["foreground", "cell_score"]))

    def score_windows(self, feats: np.ndarray) -> np.ndarray:
        """MLP probability that each window is a well-placed box of the class."""
        t = self.tensors
        z = (feats - t["window_mean"]) / t["window_std"]
        layers = [(t[f"mlp{i}_weight"], t[f"mlp{i}_bias"]) for i in range(int(self.meta["mlp_layers"]))]
        return sigmoid(_mlp(z, layers))

    def detect(self, image: np.ndarray, maps: dict[str, np.ndarray], dense: object | None,
               min_score: float = 0.05, max_detections: int = 60) -> tuple[np.ndarray, np.ndarray]:
        """``(boxes (N, 4) x, y, w, h, scores (N,))`` of the class in ``image``, best first; ``maps`` holds the
        foreground maps (``foreground``, and ``static`` when the head uses it), the cell scores are added here."""
        size = (image.shape[1], image.shape[0])
        maps = {**maps, "cell_score": self.cell_scores(image, dense)}
        windows = self.windows(size)
        floors = self.meta["first_stage"]
        means = whole_window_means(windows, {k: maps[k] for k in floors}, size)
        keep = np.zeros(len(windows), bool)
        for name, floor in floors.items():
            keep |= means[name] >= floor
        windows = windows[keep]
        if not len(windows):
            return np.zeros((0, 4)), np.zeros(0)
        scores = self.score_windows(self.features(windows, maps, size))
        good = scores >= min_score
        windows, scores = windows[good], scores[good]
        if len(scores) > MAX_NMS_CANDIDATES:
            top = np.argsort(-scores, kind="stable")[:MAX_NMS_CANDIDATES]
            windows, scores = windows[top], scores[top]
        order = greedy_nms(windows, scores, float(self.meta["nms_iou"]), max_detections,
                           float(self.meta.get("nms_containment", 1.0)))
        boxes, scores = windows[order], scores[order]
        if self.meta.get("refine", False):
            boxes = refine_to_foreground(boxes, maps["foreground"])
        if self.meta.get("fixed_aspect", False):  # the labelled width/height ratio, centred where the box is
            width = self.prior.aspect * boxes[:, 3]
            boxes = np.stack([boxes[:, 0] + (boxes[:, 2] - width) / 2, boxes[:, 1], width, boxes[:, 3]], axis=1)
            keep = greedy_nms(boxes, scores, FINAL_NMS_IOU, len(boxes))
            boxes, scores = boxes[keep], scores[keep]
        if self.meta.get("centre_on_profile", False):
            boxes = centre_on_profile(boxes, maps["foreground"])
            keep = greedy_nms(boxes, scores, FINAL_NMS_IOU, len(boxes))
            boxes, scores = boxes[keep], scores[keep]
        return boxes, scores


def head_paths(path: str | Path) -> tuple[Path, Path]:
    """``(HEAD.safetensors, HEAD.json)`` for a path given with or without either suffix."""
    p = Path(path)
    if p.suffix in (".safetensors", ".json"):
        p = p.with_suffix("")
    return p.with_name(p.name + ".safetensors"), p.with_name(p.name + ".json")


def save_head(head: FewShotHead, path: str | Path) -> Path:
    """Write the head's tensors and JSON (atomically); returns the safetensors path."""
    weights, meta_path = head_paths(path)
    weights.parent.mkdir(parents=True, exist_ok=True)
    tmp = weights.with_name(weights.name + ".tmp")
    save_file({k: np.ascontiguousarray(v) for k, v in head.tensors.items()}, str(tmp),
              metadata={"format": FORMAT})
    atomic_write_bytes(weights, tmp.read_bytes())
    tmp.unlink()
    write_json(meta_path, {"format": FORMAT, "format_version": FORMAT_VERSION, **head.meta})
    return weights


def load_head(path: str | Path) -> FewShotHead:
    """Read a head written by :func:`save_head`; errors name the file and what is wrong."""
    weights, meta_path = head_paths(path)
    for p in (weights, meta_path):
        if not p.is_file():
            raise FileNotFoundError(f"few-shot head: {p} does not exist")
    meta = json.loads(meta_path.read_text())
    if meta.get("format") != FORMAT:
        raise ValueError(f"{meta_path}: format {meta.get('format')!r}, expected {FORMAT!r}")
    tensors = load_file(str(weights))
    required = ["cell_mean", "cell_std", "cell_weight", "cell_bias", "window_mean", "window_std"]
    missing = [k for k in required if k not in tensors]
    if missing:
        raise ValueError(f"{weights}: missing tensors {', '.join(missing)}")
    return FewShotHead(tensors, {k: v for k, v in meta.items() if k not in ("format", "format_version")})
