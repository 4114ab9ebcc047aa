"""Fitting a few-shot head (:class:`~perception.detection.fewshot.FewShotHead`) from the boxes of a few frames.

1. Box prior (row -> size) from the labelled boxes; background image from the labelled frames with their boxes
   masked out; foreground of each labelled frame from MOG2 primed with that background and run over the frames in
   order (what the detector does at run time).
2. Cell head: L2-regularised logistic regression (class-balanced) on standardised cell features; positives are
   cells whose centre lies in the central part of a box (people are narrower than their box), negatives cells
   outside every grown box. The window scorer sees cell scores of each frame from a head fitted without that frame
   (cross-fitting), so it learns how much to trust them on frames the cell head has not seen.
3. Window scorer: an MLP on window features, trained with binary cross-entropy on a soft target (minibatches drawn
   with class-balancing weights), the window's best
   IoU with a labelled box mapped linearly from [0.3, 0.7] to [0, 1], so the best-placed window scores highest.
   Windows overlapping an ignore region (IoU >= 0.5) are left out.
"""

from __future__ import annotations

import hashlib
import time
from typing import Callable

import numpy as np
import torch

from perception.detection.boxes import iou_matrix
from perception.detection.fewshot import FewShotHead, cell_features, whole_window_means
from perception.detection.fewshot_augment import cutouts, synthetic_frames
from perception.detection.fewshot_detector import STATIC_RATE
from perception.detection.foreground import ForegroundModel, StaticBackground, background_from_labels
from perception.detection.proposals import ASPECTS, SCALES, BoxPrior, candidate_windows, window_features
from perception.runtime.device import torch_threads

STEP_SHARE, MIN_STEP, MAX_STEP = 0.06, 4.0, 16.0  # window grid step: this share of the median labelled height
NMS_IOU = 0.3
NMS_CONTAINMENT = 0.7
REFINE = True
USE_STATIC = True
HIDDEN = 32
SYNTHETIC_FRAMES = 12  # copy-paste frames made from the labelled ones (fewshot_augment), added to the training set
FIXED_ASPECT = True  # output boxes get the labelled aspect ratio (annotators draw a near-constant width/height)
CENTRE_ON_PROFILE = True  # output boxes move onto the nearest peak of the foreground's column profile


def _cell_labels(grid_hw: tuple[int, int], image_size: tuple[int, int], boxes: np.ndarray,
                 ignore: np.ndarray) -> np.ndarray:
    """``(h, w)`` int8: 1 positive, 0 negative, -1 unused."""
    h, w = grid_hw
    cx = (np.arange(w) + 0.5) * image_size[0] / w
    cy = (np.arange(h) + 0.5) * image_size[1] / h
    xx, yy = np.meshgrid(cx, cy)
    labels = np.zeros((h, w), np.int8)
    for x, y, bw, bh in np.concatenate([boxes, ignore]).reshape(-1, 4):
        near = (xx >= x - 0.15 * bw) & (xx <= x + 1.15 * bw) & (yy >= y - 0.1 * bh) & (yy <= y + 1.1 * bh)
        labels[near] = -1
    for x, y, bw, bh in np.asarray(boxes).reshape(-1, 4):
        core = (xx >= x + 0.2 * bw) & (xx <= x + 0.8 * bw) & (yy >= y + 0.05 * bh) & (yy <= y + 0.95 * bh)
        labels[core] = 1
    return labels


def _logistic(x: np.ndarray, y: np.ndarray, l2: float = 1e-2, steps: int = 40) -> tuple[np.ndarray, float]:
    """Class-balanced L2-regularised logistic regression by L-BFGS: ``(weight (F,), bias)``."""
    xt, yt = torch.from_numpy(x.astype(np.float32)), torch.from_numpy(y.astype(np.float32))
    pos = max(float(yt.sum()), 1.0)
    neg = max(float(len(yt) - yt.sum()), 1.0)
    sample_w = torch.where(yt > 0, 0.5 / pos, 0.5 / neg)
    w = torch.zeros(x.shape[1], requires_grad=True)
    b = torch.zeros(1, requires_grad=True)
    opt = torch.optim.LBFGS([w, b], max_iter=steps, line_search_fn="strong_wolfe")

    def closure() -> torch.Tensor:
        opt.zero_grad()
        loss = (torch.nn.functional.binary_cross_entropy_with_logits(xt @ w + b, yt, reduction="none")
                * sample_w).sum() + l2 * (w * w).sum()
        loss.backward()
        return loss

    opt.step(closure)
    return w.detach().numpy(), float(b.detach()[0])


def _train_mlp(x: np.ndarray, target: np.ndarray, weight: np.ndarray, seed: int, steps: int = 400,
               hidden: int = HIDDEN, batch: int = 2048) -> list[tuple[np.ndarray, np.ndarray]]:
    """Two hidden ReLU layers, BCE with soft targets, Adam on minibatches drawn with probability ``weight``."""
    gen = torch.Generator().manual_seed(seed)
    dims = [x.shape[1], hidden, hidden, 1]
    params = []
    for a, b in zip(dims[:-1], dims[1:]):
        params.append((torch.randn(a, b, generator=gen) * (2.0 / a) ** 0.5).requires_grad_())
        params.append(torch.zeros(b).requires_grad_())
    xt, tt = torch.from_numpy(x.astype(np.float32)), torch.from_numpy(target.astype(np.float32))
    probs = torch.from_numpy((weight / weight.sum()).astype(np.float64))
    opt = torch.optim.Adam(params, lr=5e-3, weight_decay=1e-4)
    for _ in range(steps):
        idx = torch.multinomial(probs, min(batch, len(xt)), replacement=True, generator=gen)
        h = xt[idx]
        for i in range(0, len(params), 2):
            h = h @ params[i] + params[i + 1]
            if i < len(params) - 2:
                h = torch.relu(h)
        loss = torch.nn.functional.binary_cross_entropy_with_logits(h[:, 0], tt[idx])
        opt.zero_grad()
        loss.backward()
        opt.step()
    return [(params[i].detach().numpy(), params[i + 1].detach().numpy()) for i in range(0, len(params), 2)]


def fit_head(images: list[np.ndarray], boxes: list[np.ndarray], ignore: list[np.ndarray] | None = None,
             dense: list[object] | None = None, encoder: dict | None = None, class_name: str = "person",
             seed: int = 0, max_negatives: int = 25000, max_near: int = 25000,
             encode: Callable[[np.ndarray], object] | None = None,
             synthetic: int | None = None) -> FewShotHead:
    """Learn a head from RGB ``images`` (same size), their valid ``boxes`` (x, y, w, h) and ``ignore`` regions,
    with the encoder's ``dense`` maps ((C, h, w) each) or colour alone when ``dense`` is None. ``synthetic``
    copy-paste frames are added to the window scorer's training set; with encoder features they need ``encode``
    (an image -> dense map function), without it they are skipped (``None``: ``SYNTHETIC_FRAMES``)."""
    synthetic = SYNTHETIC_FRAMES if synthetic is None else synthetic
    with torch_threads(1):
        return _fit_head(images, boxes, ignore, dense, encoder, class_name, seed, max_negatives, max_near, encode,
                         synthetic)


def _fit_head(images: list[np.ndarray], boxes: list[np.ndarray], ignore: list[np.ndarray] | None,
              dense: list[object] | None, encoder: dict | None, class_name: str, seed: int, max_negatives: int,
              max_near: int, encode: Callable[[np.ndarray], object] | None, synthetic: int) -> FewShotHead:
    started = time.time()
    if not images or len(images) != len(boxes):
        raise ValueError(f"fit_head: {len(images)} images but {len(boxes)} box lists")
    ignore = ignore or [np.zeros((0, 4))] * len(images)
    boxes = [np.asarray(b, np.float64).reshape(-1, 4) for b in boxes]
    ignore = [np.asarray(g, np.float64).reshape(-1, 4) for g in ignore]
    size = (images[0].shape[1], images[0].shape[0])
    use_encoder = dense is not None
    prior = BoxPrior.fit(np.concatenate(boxes), size)
    background = background_from_labels(images, [np.concatenate([b, g]) for b, g in zip(boxes, ignore)])
    model = ForegroundModel()
    model.prime(background)
    static = StaticBackground(background)
    frame_maps = []
    for im in images:
        diff = static.difference(im)
        frame_maps.append({"foreground": np.maximum(model(im), diff), "static": diff})
    map_names = ["foreground", "cell_score", "static"] if USE_STATIC else ["foreground", "cell_score"]

    feats = [cell_features(im, None if dense is None else d, use_encoder) for im, d in
             zip(images, dense or [None] * len(images))]
    labels = [_cell_labels(f.shape[:2], size, b, g) for f, b, g in zip(feats, boxes, ignore)]
    flat = np.concatenate([f.reshape(-1, f.shape[2]) for f in feats])
    mean, std = flat.mean(0), flat.std(0) + 1e-6
    z = [(f - mean) / std for f in feats]

    def fit_cells(frames: list[int]) -> tuple[np.ndarray, float]:
        x = np.concatenate([z[i][labels[i] >= 0] for i in frames])
        y = np.concatenate([labels[i][labels[i] >= 0] for i in frames])
        return _logistic(x, y)

    cell_w, cell_b = fit_cells(list(range(len(images))))
    cell_maps = []
    for k in range(len(images)):
        w_k, b_k = fit_cells([i for i in range(len(images)) if i != k]) if len(images) > 1 else (cell_w, cell_b)
        cell_maps.append((1.0 / (1.0 + np.exp(-np.clip(z[k] @ w_k + b_k, -30, 30)))).astype(np.float32))
    n_real = len(images)
    if synthetic > 0 and (not use_encoder or encode is not None):
        pieces = cutouts(images, boxes, [m["static"] for m in frame_maps])
        made = synthetic_frames(background, pieces, prior, synthetic, np.random.default_rng(seed + 1))
        for im, b in made:
            diff = static.difference(im)
            frame_maps.append({"foreground": diff, "static": diff})
            zf = (cell_features(im, encode(im) if use_encoder else None, use_encoder) - mean) / std
            cell_maps.append((1.0 / (1.0 + np.exp(-np.clip(zf @ cell_w + cell_b, -30, 30)))).astype(np.float32))
            images, boxes, ignore = images + [im], boxes + [b], ignore + [np.zeros((0, 4))]

    all_boxes = np.concatenate(boxes[:n_real])
    step = float(np.clip(STEP_SHARE * np.median(all_boxes[:, 3]), MIN_STEP, MAX_STEP))
    windows = candidate_windows(prior, size, step, SCALES, ASPECTS)
    for k in range(len(images)):
        frame_maps[k]["cell_score"] = cell_maps[k]
    stage_names = [n for n in map_names if n != "cell_score"] + ["cell_score"]
    stage: dict[str, list[np.ndarray]] = {n: [] for n in stage_names}
    best_iou, frame_of = [], []
    for k in range(len(images)):
        means = whole_window_means(windows, {n: frame_maps[k][n] for n in stage_names}, size)
        for n in stage_names:
            stage[n].append(means[n])
        iou = iou_matrix(windows, boxes[k]).max(axis=1) if len(boxes[k]) else np.zeros(len(windows))
        ign = iou_matrix(windows, ignore[k]).max(axis=1) if len(ignore[k]) else np.zeros(len(windows))
        best_iou.append(np.where((ign >= 0.5) & (iou < 0.5), np.nan, iou))
        frame_of.append(np.full(len(windows), k))
    stage_all = {n: np.concatenate(v) for n, v in stage.items()}
    iou_all, frame_all = np.concatenate(best_iou), np.concatenate(frame_of)
    positive = iou_all >= 0.5
    first_stage = {n: float(np.quantile(v[positive], 0.5 if n == "cell_score" else 0.1)) if positive.any() else 0.5
                   for n, v in stage_all.items()}
    passing = np.zeros(len(iou_all), bool)
    for n, floor in first_stage.items():
        passing |= stage_all[n] >= floor
    passing &= np.isfinite(iou_all)
    rng = np.random.default_rng(seed)
    near = np.flatnonzero(passing & (iou_all >= 0.2))
    near = rng.choice(near, size=min(len(near), max_near), replace=False) if len(near) else near
    far = np.flatnonzero(passing & (iou_all < 0.2))
    far = rng.choice(far, size=min(len(far), max_negatives), replace=False) if len(far) else far
    chosen = np.sort(np.concatenate([near, far]))
    n_windows = len(windows)
    head_tmp = FewShotHead({}, {"box_prior": prior.as_dict(), "maps": map_names})
    x = np.concatenate([head_tmp.features(windows[chosen[frame_all[chosen] == k] - k * n_windows], frame_maps[k],
                                          size) for k in range(len(images))])
    target = np.clip((iou_all[chosen] - 0.3) / 0.4, 0.0, 1.0)
    weight = np.where(iou_all[chosen] >= 0.2, 1.0, max(len(near), 1) / max(len(far), 1))
    w_mean, w_std = x.mean(0), x.std(0) + 1e-6
    layers = _train_mlp((x - w_mean) / w_std, target, weight, seed)

    tensors = {"cell_mean": mean.astype(np.float32), "cell_std": std.astype(np.float32),
               "cell_weight": cell_w.astype(np.float32), "cell_bias": np.array([cell_b], np.float32),
               "window_mean": w_mean.astype(np.float32), "window_std": w_std.astype(np.float32),
               "background": background}
    for i, (w, b) in enumerate(layers):
        tensors[f"mlp{i}_weight"], tensors[f"mlp{i}_bias"] = w.astype(np.float32), b.astype(np.float32)
    meta = {
        "classes": [class_name],
        "encoder": encoder or {"name": None},
        "features": {"use_encoder": use_encoder, "cell_features": int(mean.shape[0]), "stride": 8,
                     "colour": "Lab cell means", "foreground": "MOG2 primed with the labelled frames' background"},
        "box_prior": prior.as_dict(),
        "windows": {"step": step, "scales": list(SCALES), "aspects": list(ASPECTS)},
        "first_stage": first_stage,
        "maps": map_names,
        "mlp_layers": len(layers),
        "nms_iou": NMS_IOU,
        "nms_containment": NMS_CONTAINMENT,
        "refine": REFINE,
        "fixed_aspect": FIXED_ASPECT,
        "centre_on_profile": CENTRE_ON_PROFILE,
        "foreground_union": True,
        "static_rate": STATIC_RATE,
        "threshold": 0.5,
        "image_size": list(size),
        "fit": {"frames": n_real, "synthetic_frames": len(images) - n_real, "boxes": int(sum(len(b) for b in boxes[:n_real])),
                "positive_cells": int(sum((lab == 1).sum() for lab in labels)),
                "training_windows": int(len(chosen)), "positive_windows": int(positive.sum()),
                "first_stage_pass_rate": float(passing.mean()), "seconds": round(time.time() - started, 2),
                "seed": seed},
    }
    return FewShotHead(tensors, meta)


def labels_digest(boxes: list[np.ndarray]) -> str:
    """Short hash of the labelled boxes (recorded in the head's JSON)."""
    digest = hashlib.sha256()
    for b in boxes:
        digest.update(np.ascontiguousarray(np.asarray(b, np.float64)).tobytes())
    return digest.hexdigest()[:16]
