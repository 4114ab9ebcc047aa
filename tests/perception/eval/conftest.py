"""Fixtures for the label-propagation tests: a small DAVIS-layout folder written per test.

The suite runs with ``--import-mode=importlib``, so helpers reach the tests as fixtures, never by import;
``shared_data`` comes from ``tests/conftest.py``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable

import cv2
import numpy as np
import pytest


def write_davis(root: Path, sequences: dict[str, int], height: int = 72, width: int = 100) -> Path:
    """``ROOT/JPEGImages/480p/<seq>/%05d.jpg`` and ``ROOT/Annotations/480p/<seq>/%05d.png`` (0/255): a red 24x24
    square moving right by 3 px per frame over a blue background, 2 px lower in each further sequence."""
    for index, (name, n_frames) in enumerate(sequences.items()):
        images = root / "JPEGImages" / "480p" / name
        annotations = root / "Annotations" / "480p" / name
        images.mkdir(parents=True)
        annotations.mkdir(parents=True)
        for t in range(n_frames):
            frame = np.empty((height, width, 3), np.uint8)
            frame[:] = (200, 90, 40)  # BGR: blue
            mask = np.zeros((height, width), np.uint8)
            top, left = 20 + 2 * index, 16 + 3 * t
            frame[top:top + 24, left:left + 24] = (30, 40, 230)  # BGR: red
            mask[top:top + 24, left:left + 24] = 255
            cv2.imwrite(str(images / f"{t:05d}.jpg"), frame, [cv2.IMWRITE_JPEG_QUALITY, 95])
            cv2.imwrite(str(annotations / f"{t:05d}.png"), mask)
    return root


@pytest.fixture
def make_davis(tmp_path: Path) -> Callable[..., Path]:
    """``make_davis({"seq": n_frames, ...})`` -> a DAVIS root under ``tmp_path``."""
    return lambda sequences, **kw: write_davis(tmp_path / "davis", sequences, **kw)
