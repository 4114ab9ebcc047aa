"""Synthetic training frames for the few-shot head, made from the labelled frames alone (copy-paste augmentation).

Five labelled frames show a few people at a few places; at run time people walk in pairs, stand side by side,
occlude each other and appear at rows the labels never covered. The window scorer learns what it is shown, so
:func:`synthetic_frames` shows it more: each labelled person is cut out with its foreground mask (the pixels of
its box that differ from the labelled frames' background) and pasted onto that background at random foot points,
scaled by the ground-plane :class:`~perception.detection.proposals.BoxPrior` for the new row, often right beside
another pasted person (the hard negative: a window spanning two people), farther people painted first so nearer
ones occlude them. (Dwibedi, Misra and Hebert, "Cut, Paste and Learn", ICCV 2017; Ghiasi et al., "Simple
Copy-Paste is a Strong Data Augmentation Method", CVPR 2021.)
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from perception.detection.proposals import BoxPrior

PAIR_PROBABILITY = 0.5  # a pasted person stands beside the previous one this often
ROW_MARGIN = (0.08, 0.3)  # foot rows sampled this far (share of the image height) above / below the labelled ones


@dataclass
class Cutout:
    """One labelled object: its box's pixels, a soft mask of the object inside the box, the box size."""

    pixels: np.ndarray  # (h, w, 3) uint8
    mask: np.ndarray  # (h, w) float32 in [0, 1]


def cutouts(images: list[np.ndarray], boxes: list[np.ndarray], foreground: list[np.ndarray],
            min_fill: float = 0.2) -> list[Cutout]:
    """The labelled boxes fully inside their image whose foreground covers at least ``min_fill`` of the box."""
    out = []
    for image, frame_boxes, fg in zip(images, boxes, foreground):
        height, width = image.shape[:2]
        for x, y, w, h in np.asarray(frame_boxes, np.float64).reshape(-1, 4):
            x0, y0, x1, y1 = int(round(x)), int(round(y)), int(round(x + w)), int(round(y + h))
            if x0 < 0 or y0 < 0 or x1 > width or y1 > height or x1 - x0 < 4 or y1 - y0 < 8:
                continue
            mask = fg[y0:y1, x0:x1].astype(np.float32)
            if mask.mean() < min_fill:
                continue
            mask = cv2.GaussianBlur(mask, (3, 3), 0.8)
            out.append(Cutout(image[y0:y1, x0:x1].copy(), mask))
    return out


def synthetic_frames(background: np.ndarray, pieces: list[Cutout], prior: BoxPrior, count: int,
                     rng: np.random.Generator, people: tuple[int, int] = (3, 8)) -> list[tuple[np.ndarray, np.ndarray]]:
    """``count`` frames ``(image (H, W, 3) uint8, boxes (N, 4) x, y, w, h)`` of pasted people on ``background``."""
    if not pieces:
        return []
    height, width = background.shape[:2]
    lo = max(prior.bottom_range[0] - ROW_MARGIN[0], 0.05)
    hi = min(prior.bottom_range[1] + ROW_MARGIN[1], 1.0)
    frames = []
    for _ in range(count):
        placed: list[tuple[float, float, Cutout, float]] = []  # (bottom, centre x, piece, height) in pixels
        for _ in range(int(rng.integers(people[0], people[1] + 1))):
            piece = pieces[int(rng.integers(len(pieces)))]
            if placed and rng.random() < PAIR_PROBABILITY:
                bottom, cx_prev, _, h_prev = placed[-1]
                bottom = float(np.clip(bottom + rng.normal(0, 0.05) * h_prev, 1, height))
                side = 1.0 if rng.random() < 0.5 else -1.0
                cx = cx_prev + side * rng.uniform(0.25, 0.6) * h_prev
            else:
                bottom = float(rng.uniform(lo, hi) * height)
                cx = float(rng.uniform(0, width))
            h = float(prior.height(np.array([bottom / height]))[0] * height * rng.uniform(0.92, 1.08))
            placed.append((bottom, cx, piece, h))
        canvas = background.astype(np.float32)
        boxes = []
        for bottom, cx, piece, h in sorted(placed, key=lambda p: p[0]):  # far (higher up) first
            ph, pw = piece.mask.shape
            w = h * pw / ph
            size = (max(2, int(round(w))), max(2, int(round(h))))
            pix = cv2.resize(piece.pixels, size, interpolation=cv2.INTER_AREA).astype(np.float32)
            alpha = cv2.resize(piece.mask, size, interpolation=cv2.INTER_LINEAR)[..., None]
            x0, y0 = int(round(cx - size[0] / 2)), int(round(bottom - size[1]))
            cx0, cy0 = max(x0, 0), max(y0, 0)
            cx1, cy1 = min(x0 + size[0], width), min(y0 + size[1], height)
            if cx1 - cx0 < size[0] * 0.5 or cy1 - cy0 < size[1] * 0.5:
                continue
            src = (slice(cy0 - y0, cy1 - y0), slice(cx0 - x0, cx1 - x0))
            dst = canvas[cy0:cy1, cx0:cx1]
            canvas[cy0:cy1, cx0:cx1] = alpha[src] * pix[src] + (1 - alpha[src]) * dst
            boxes.append([x0, y0, size[0], size[1]])
        frames.append((canvas.clip(0, 255).astype(np.uint8), np.asarray(boxes, np.float64).reshape(-1, 4)))
    return frames
