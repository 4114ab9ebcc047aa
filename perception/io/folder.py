"""A folder of images (an extracted sequence: DAVIS, MOTChallenge ``img1/``...) as a ``FrameSource``.

Files matching ``pattern`` with an image extension are read in natural order (``frame2`` before ``frame10``) with
OpenCV and converted to RGB. Frame ``i`` is stamped ``i / fps`` seconds (the sequence's nominal rate), continuing
across loops.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Iterator

import cv2
import numpy as np

from perception.io.frame import Frame, SourceError

IMAGE_EXTENSIONS = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp", ".ppm", ".pgm"})


def natural_key(path: Path) -> list:
    """Sort key that orders embedded numbers by value: ``img2.png`` < ``img10.png``."""
    return [int(part) if part.isdigit() else part.lower() for part in re.split(r"(\d+)", path.name)]


def list_images(folder: Path, pattern: str = "*") -> list[Path]:
    return sorted((p for p in folder.glob(pattern) if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS),
                  key=natural_key)


def read_rgb(path: Path) -> np.ndarray:
    """Read one image file as ``(H, W, 3)`` uint8 RGB (grey and 16-bit images are converted); ``SourceError``."""
    image = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if image is None:
        raise SourceError(f"{path}: cannot read as an image (corrupt or unsupported file)")
    return cv2.cvtColor(image, cv2.COLOR_BGR2RGB)  # much faster than copying a reversed-channel view


class ImageFolderSource:
    """Images of ``folder`` matching ``pattern`` (glob, default all), at ``fps`` for stamps.

    ``size`` is the size of the first image; every image must have that size (``SourceError`` naming the file
    otherwise), since a sequence with changing sizes is almost always a mistake in the folder.
    """

    def __init__(self, folder: str | Path, pattern: str = "*", fps: float = 30.0, loop: bool = False,
                 frame_id: str = "camera_optical_frame", name: str | None = None) -> None:
        self.folder = Path(folder)
        if not self.folder.is_dir():
            raise SourceError(f"{self.folder}: not a directory")
        if fps <= 0:
            raise SourceError(f"{self.folder}: fps must be > 0, got {fps}")
        self.files = list_images(self.folder, pattern)
        if not self.files:
            exts = ", ".join(sorted(IMAGE_EXTENSIONS))
            raise SourceError(f"{self.folder}: no images matching '{pattern}' (extensions {exts})")
        self.fps: float | None = float(fps)
        self.loop = loop
        self.frame_id = frame_id
        self.name = name or self.folder.name
        first = read_rgb(self.files[0])
        self.size: tuple[int, int] = (first.shape[1], first.shape[0])
        self.num_frames: int = len(self.files)
        self._closed = False

    def __iter__(self) -> Iterator[Frame]:
        self._closed = False
        period_ns = 1e9 / self.fps
        seq = 0
        while True:
            for index, path in enumerate(self.files):
                if self._closed:
                    return
                image = read_rgb(path)
                if (image.shape[1], image.shape[0]) != self.size:
                    raise SourceError(f"{path}: size {image.shape[1]}x{image.shape[0]} differs from the first image's "
                                      f"{self.size[0]}x{self.size[1]} ({self.files[0].name})")
                yield Frame(image=image, stamp_ns=int(round(seq * period_ns)), frame_id=self.frame_id, seq=seq,
                            meta={"source": self.name, "path": str(path), "index": index})
                seq += 1
            if not self.loop:
                return

    def close(self) -> None:
        self._closed = True

    def __enter__(self) -> "ImageFolderSource":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
