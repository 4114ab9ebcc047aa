"""DAVIS-2016 video object segmentation data: frames and binary masks of one sequence.

Layout (Perazzi et al., "A Benchmark Dataset and Evaluation Methodology for Video Object Segmentation", CVPR 2016):
``ROOT/JPEGImages/480p/<seq>/%05d.jpg`` and ``ROOT/Annotations/480p/<seq>/%05d.png``; a pixel is foreground where
the mask is 255 (DAVIS-2016 masks are single-object, 0/255).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

RESOLUTION = "480p"


class DavisError(FileNotFoundError):
    """A DAVIS folder, sequence or file is missing or unreadable; the message names it."""


@dataclass
class DavisSequence:
    """One sequence. frames: ``(T, H, W, 3)`` uint8 RGB. masks: ``(T, H, W)`` bool, foreground where the png is 255."""

    name: str
    frames: np.ndarray
    masks: np.ndarray

    def __len__(self) -> int:
        return int(self.frames.shape[0])


def _folders(root: Path) -> tuple[Path, Path]:
    return root / "JPEGImages" / RESOLUTION, root / "Annotations" / RESOLUTION


def list_sequences(root: str | Path) -> list[str]:
    """Names of the sequences that have both a frame folder and an annotation folder, sorted."""
    images, annotations = _folders(Path(root))
    for folder in (images, annotations):
        if not folder.is_dir():
            raise DavisError(f"DAVIS root {root}: folder {folder} not found (expected JPEGImages/{RESOLUTION} "
                             f"and Annotations/{RESOLUTION} under the root)")
    names = {p.name for p in images.iterdir() if p.is_dir()} & {p.name for p in annotations.iterdir() if p.is_dir()}
    return sorted(names)


def _read_rgb(path: Path) -> np.ndarray:
    image = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if image is None:
        raise DavisError(f"cannot read frame {path}")
    return cv2.cvtColor(image, cv2.COLOR_BGR2RGB)


def _read_mask(path: Path) -> np.ndarray:
    mask = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    if mask is None:
        raise DavisError(f"cannot read mask {path}")
    if mask.ndim == 3:  # a palette or RGB png: any channel at 255 marks the object
        mask = mask.max(axis=2)
    return mask == 255


def load_sequence(root: str | Path, name: str, max_frames: int = 0) -> DavisSequence:
    """Frames and masks of sequence ``name`` (the first ``max_frames`` when > 0).

    Raises DavisError naming the missing folder or sequence (and listing the available ones), a frame without a
    mask, or frames and masks of different sizes.
    """
    root = Path(root)
    available = list_sequences(root)
    if name not in available:
        raise DavisError(f"DAVIS sequence '{name}' not found under {root} "
                         f"(available: {', '.join(available) or 'none'})")
    images, annotations = _folders(root)
    frame_paths = sorted((images / name).glob("*.jpg"))
    if not frame_paths:
        raise DavisError(f"no .jpg frames in {images / name}")
    if max_frames > 0:
        frame_paths = frame_paths[:max_frames]
    frames, masks = [], []
    for frame_path in frame_paths:
        mask_path = annotations / name / (frame_path.stem + ".png")
        if not mask_path.is_file():
            raise DavisError(f"sequence '{name}': frame {frame_path.name} has no mask {mask_path}")
        frame, mask = _read_rgb(frame_path), _read_mask(mask_path)
        if frame.shape[:2] != mask.shape:
            raise DavisError(f"sequence '{name}': frame {frame_path.name} is {frame.shape[1]}x{frame.shape[0]} "
                             f"but its mask is {mask.shape[1]}x{mask.shape[0]}")
        frames.append(frame)
        masks.append(mask)
    return DavisSequence(name=name, frames=np.stack(frames), masks=np.stack(masks))
