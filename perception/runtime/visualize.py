"""Pictures of the outputs: features as RGB (PCA) and detections drawn over the frame.

``FeaturePCA`` shows a dense map ``(C, h, w)`` as the projection on its first three principal components (the usual
way DINO/DINOv2 papers display patch features), one component per colour channel. The basis, its sign and the
colour range are fitted once and then kept, so the same feature gets the same colour from frame to frame (no
flicker); ``refit()`` asks for a new fit on the next frame (after a scene change, say). Signs are fixed by making
each component's largest loading positive, so a refit on similar features gives similar colours.

``draw_overlay`` draws boxes, track ids and scores with OpenCV; the colour of a track depends only on its id.
"""

from __future__ import annotations

import colorsys

import cv2
import numpy as np
import torch

from perception.detection.types import Detections

UNTRACKED_COLOUR = (200, 200, 200)


def _as_cells(dense: torch.Tensor | np.ndarray) -> torch.Tensor:
    """``(C, h, w)`` -> ``(h * w, C)`` float32 tensor (on the dense map's device)."""
    t = torch.as_tensor(dense)
    if t.ndim != 3:
        raise ValueError(f"features: expected a (C, h, w) dense map, got shape {tuple(t.shape)}")
    return t.detach().float().flatten(1).T


class FeaturePCA:
    """Fixed 3-component PCA colouring of dense feature maps.

    low_q, high_q: percentiles of the fitted projections mapped to 0 and 255 (robust to outliers).
    """

    def __init__(self, low_q: float = 1.0, high_q: float = 99.0) -> None:
        self.low_q = low_q
        self.high_q = high_q
        self.mean: torch.Tensor | None = None  # (C,)
        self.basis: torch.Tensor | None = None  # (C, 3)
        self.low: torch.Tensor | None = None  # (3,)
        self.span: torch.Tensor | None = None  # (3,)
        self.fits = 0

    @property
    def fitted(self) -> bool:
        return self.basis is not None

    def refit(self) -> None:
        """Forget the basis; the next call fits a new one."""
        self.mean = self.basis = self.low = self.span = None

    def fit(self, dense: torch.Tensor | np.ndarray, max_cells: int = 4096) -> "FeaturePCA":
        """Fit mean, basis and colour range on (an even subsample of at most ``max_cells`` of) the cells."""
        cells = _as_cells(dense)
        if cells.shape[0] > max_cells:
            cells = cells[:: -(-cells.shape[0] // max_cells)]
        channels = cells.shape[1]
        mean = cells.mean(0)
        centred = cells - mean
        cov = centred.T @ centred / max(1, cells.shape[0] - 1)
        _, vectors = torch.linalg.eigh(cov.double())  # ascending eigenvalues
        basis = vectors[:, -3:].flip(1).float() if channels >= 3 else torch.eye(channels, 3, dtype=torch.float32)
        basis = basis.to(cells.device)
        peak = basis.gather(0, basis.abs().argmax(0, keepdim=True))
        basis = basis * torch.where(peak < 0, -1.0, 1.0)
        proj = centred @ basis
        low = torch.quantile(proj, self.low_q / 100.0, dim=0)
        high = torch.quantile(proj, self.high_q / 100.0, dim=0)
        self.mean, self.basis, self.low, self.span = mean, basis, low, (high - low).clamp_min(1e-6)
        self.fits += 1
        return self

    def __call__(self, dense: torch.Tensor | np.ndarray) -> np.ndarray:
        """``(C, h, w)`` -> ``(h, w, 3)`` uint8 RGB, fitting first when needed (or when C changed)."""
        cells = _as_cells(dense)
        if self.basis is None or self.basis.shape[0] != cells.shape[1] or self.basis.device != cells.device:
            self.fit(dense)
        proj = (cells - self.mean) @ self.basis
        rgb = ((proj - self.low) / self.span * 255.0).clamp_(0, 255).round_().to(torch.uint8)
        h, w = torch.as_tensor(dense).shape[1:]
        return np.ascontiguousarray(rgb.reshape(h, w, 3).cpu().numpy())


def features_pca_rgb(dense: torch.Tensor | np.ndarray, pca: FeaturePCA | None = None) -> np.ndarray:
    """``(C, h, w)`` -> ``(h, w, 3)`` uint8 RGB; pass a ``FeaturePCA`` to keep colours stable across frames."""
    return (pca or FeaturePCA())(dense)


def track_colour(track_id: int) -> tuple[int, int, int]:
    """Deterministic, well-separated RGB colour of a track id (golden-ratio hue steps); grey when untracked."""
    if track_id < 0:
        return UNTRACKED_COLOUR
    hue = (int(track_id) * 0.618033988749895) % 1.0
    r, g, b = colorsys.hsv_to_rgb(hue, 0.85, 1.0)
    return int(r * 255), int(g * 255), int(b * 255)


def _label(track_id: int, score: float, class_id: str) -> str:
    name = "" if class_id in ("", "object") else f"{class_id} "
    ident = f"#{track_id} " if track_id >= 0 else ""
    return f"{name}{ident}{score:.2f}"


def draw_overlay(image: np.ndarray, detections: Detections, thickness: int = 2) -> np.ndarray:
    """A copy of ``image`` (``(H, W, 3)`` uint8 RGB) with each detection's box, id and score drawn."""
    out = np.ascontiguousarray(image).copy()
    height, width = out.shape[:2]
    font, font_scale = cv2.FONT_HERSHEY_SIMPLEX, 0.45
    for i in range(len(detections)):
        x, y, w, h = (float(v) for v in detections.boxes[i])
        x0, y0 = int(round(x)), int(round(y))
        x1, y1 = int(round(x + w)) - 1, int(round(y + h)) - 1
        if x1 < 0 or y1 < 0 or x0 >= width or y0 >= height:
            continue
        tid = int(detections.track_ids[i])
        colour = track_colour(tid)
        cv2.rectangle(out, (x0, y0), (x1, y1), colour, thickness, cv2.LINE_8)
        text = _label(tid, float(detections.scores[i]), detections.class_ids[i] if detections.class_ids else "")
        (tw, th), base = cv2.getTextSize(text, font, font_scale, 1)
        ty = y0 - 2 if y0 - th - base - 2 >= 0 else y0 + th + base + 2
        cv2.rectangle(out, (x0, ty - th - base), (x0 + tw + 2, ty + 1), colour, cv2.FILLED)
        cv2.putText(out, text, (x0 + 1, ty - base + 1), font, font_scale, (0, 0, 0), 1, cv2.LINE_AA)
    return out
