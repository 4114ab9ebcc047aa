"""The detection benchmark's picture: a few frames, one row per frame, one column per method, each method's boxes
(at its operating threshold) drawn over the frame with the ground truth (valid boxes green, ignore regions grey).
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from perception.eval.mot import FrameTruth
from perception.io.atomic import atomic_write_bytes

GT_COLOUR = (0, 200, 0)
IGNORE_COLOUR = (160, 160, 160)
DET_COLOURS = {"fewshot": (255, 60, 60), "discovery": (255, 160, 0), "hog": (60, 120, 255), "mog2": (200, 0, 200)}


def _rect(image: np.ndarray, box: np.ndarray, colour: tuple[int, int, int], thickness: int) -> None:
    x, y, w, h = (int(round(v)) for v in box)
    cv2.rectangle(image, (x, y), (x + w, y + h), colour, thickness)


def draw_panel(image: np.ndarray, truth: FrameTruth, boxes: np.ndarray, colour: tuple[int, int, int],
               title: str) -> np.ndarray:
    """One RGB panel: gt (thin), detections (thick), a title bar."""
    panel = image.copy()
    for box in truth.ignore:
        _rect(panel, box, IGNORE_COLOUR, 1)
    for box in truth.boxes:
        _rect(panel, box, GT_COLOUR, 1)
    for box in np.asarray(boxes).reshape(-1, 4):
        _rect(panel, box, colour, 2)
    cv2.rectangle(panel, (0, 0), (panel.shape[1], 22), (0, 0, 0), -1)
    cv2.putText(panel, title, (4, 16), cv2.FONT_HERSHEY_SIMPLEX, 0.5, (255, 255, 255), 1, cv2.LINE_AA)
    return panel


def detection_picture(frames: dict[int, np.ndarray], truth: dict[int, FrameTruth],
                      detections: dict[str, dict[int, tuple[np.ndarray, np.ndarray]]],
                      thresholds: dict[str, float | None], width: int = 384) -> np.ndarray:
    """RGB grid: rows = ``frames`` (gt numbering), columns = methods; each panel scaled to ``width`` pixels."""
    rows = []
    for frame, image in sorted(frames.items()):
        scale = width / image.shape[1]
        small = cv2.resize(image, (width, int(round(image.shape[0] * scale))), interpolation=cv2.INTER_AREA)
        gt = truth.get(frame, FrameTruth())
        gt_small = FrameTruth(gt.boxes * scale, gt.ids, gt.ignore * scale)
        panels = []
        for name, dets in detections.items():
            boxes, scores = dets.get(frame, (np.zeros((0, 4)), np.zeros(0)))
            thr = thresholds.get(name)
            keep = scores >= (thr if thr is not None else np.inf)
            title = f"{name} frame {frame}: {int(keep.sum())} boxes (gt {len(gt.boxes)})"
            panels.append(draw_panel(small, gt_small, boxes[keep] * scale, DET_COLOURS.get(name, (255, 255, 0)),
                                     title))
        rows.append(np.concatenate(panels, axis=1))
    return np.concatenate(rows, axis=0)


def write_png(path: str | Path, rgb: np.ndarray) -> Path:
    ok, data = cv2.imencode(".png", cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
    if not ok:
        raise RuntimeError(f"could not encode {path} as PNG")
    return atomic_write_bytes(Path(path), data.tobytes())
