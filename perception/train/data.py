"""Training clips from video files, image folders and rosbag2 bags, sampled by frame index.

A clip is ``clip_len`` frames ``gap`` frames apart (gaps from adjacent frames to seconds apart, drawn per clip from
``DataConfig.gaps``), resized by one random factor, cropped at one random place and optionally flipped, the same
for every frame of the clip, except that each frame's crop may be shifted by up to ``jitter`` pixels on its own: a
cell at the same place in two frames is then not the same scene point, so features cannot solve the temporal
objectives by position (padding and position embeddings) instead of appearance.

Decoding uses PyAV (decord for random access when installed); where PyAV is not installed (a bare GPU image, say)
video files are decoded with OpenCV instead. ``ClipLoader`` can prepare the next batches in a thread pool
(``DataConfig.workers``): OpenCV's resizing releases the GIL, and the batches are the same as without it.

Sampling is a pure function of ``(seed, step)``: every process draws the same global batch of
``batch_size * world_size`` clip specs and keeps its own slice ``rank::world_size`` (the sharding of
``DistributedSampler``), and a resumed run draws exactly the clips the uninterrupted run would have drawn.
"""

from __future__ import annotations

from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Iterator, Protocol, Sequence

import cv2
import numpy as np
import torch

from perception.io.bag_path import is_bag
from perception.io.folder import list_images, read_rgb
from perception.io.frame import SourceError
from perception.io.opencv_video import read_video
from perception.train.config import DataConfig

VIDEO_EXTENSIONS = {".mp4", ".avi", ".mkv", ".mov", ".webm", ".m4v", ".mpg", ".mpeg"}


class ClipSource(Protocol):
    """Random access to the frames of one recording."""

    path: Path
    num_frames: int

    def read(self, indices: Sequence[int]) -> np.ndarray: ...


def _pyav_available() -> bool:
    try:
        import av  # noqa: F401, PLC0415
    except ImportError:
        return False
    return True


def _opencv_frames(path: Path) -> Iterator[np.ndarray]:
    """Every decodable frame of a video through OpenCV (RGB), stopping at the first that fails to decode."""
    try:
        yield from read_video(path)
    except FileNotFoundError as exc:
        raise SourceError(f"{path}: cannot read as a video (OpenCV)") from exc


def count_video_frames(path: Path) -> int:
    """Frames of a video, counted by demuxing its non-empty packets (no decoding; milliseconds). The container's
    own count can be wrong: OpenCV's ``tree.avi`` declares 444 frames and holds 68. Without PyAV the frames are
    decoded and counted (OpenCV)."""
    if not _pyav_available():
        return sum(1 for _ in _opencv_frames(path))
    import av  # noqa: PLC0415
    try:
        with av.open(str(path)) as container:
            stream = container.streams.video[0]
            return sum(1 for packet in container.demux(stream) if packet.size)
    except (av.FFmpegError, IndexError) as exc:
        raise SourceError(f"{path}: cannot read as a video ({exc})") from exc


class VideoClipSource:
    """A video file read with ``read_frames`` (decord when installed, else PyAV)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.num_frames = count_video_frames(path)

    def read(self, indices: Sequence[int]) -> np.ndarray:
        from perception.io.frame_access import read_frames  # noqa: PLC0415 (PyAV or decord)
        return read_frames(self.path, list(indices))

    def read_all(self) -> Iterator[np.ndarray]:
        """Every frame in order, decoded sequentially (PyAV, threaded; OpenCV without PyAV)."""
        if not _pyav_available():
            yield from _opencv_frames(self.path)
            return
        import av  # noqa: PLC0415
        with av.open(str(self.path)) as container:
            stream = container.streams.video[0]
            stream.thread_type = "AUTO"
            for frame in container.decode(stream):
                yield frame.to_ndarray(format="rgb24")


class FolderClipSource:
    """An image folder, frames in natural file-name order."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.files = list_images(path)
        if not self.files:
            raise SourceError(f"{path}: image folder without images")
        self.num_frames = len(self.files)

    def read(self, indices: Sequence[int]) -> np.ndarray:
        return np.stack([read_rgb(self.files[i]) for i in indices])


class BagClipSource:
    """One image topic of a rosbag2 bag, decoded once into memory (at most ``max_frames`` frames)."""

    def __init__(self, path: Path, topic: str = "", max_frames: int = 2000) -> None:
        from perception.io.bag import BagSource  # noqa: PLC0415 (rosbags only when a bag is read)
        self.path = path
        source = BagSource(path, topic or None)
        frames = []
        for frame in source:
            frames.append(frame.image)
            if len(frames) >= max_frames:
                break
        source.close()
        self.frames = frames
        self.num_frames = len(frames)

    def read(self, indices: Sequence[int]) -> np.ndarray:
        return np.stack([self.frames[i] for i in indices])


class CachedClipSource:
    """Every frame of another source decoded once into memory (sequential decoding is ~10x faster than a seek per
    clip), wider frames shrunk to ``max_width`` (INTER_AREA)."""

    def __init__(self, source: ClipSource, max_width: int = 0, chunk: int = 64) -> None:
        self.path = source.path
        frames: list[np.ndarray] = []
        if hasattr(source, "read_all"):
            every: Iterable[np.ndarray] = source.read_all()
        else:
            every = (f for lo in range(0, source.num_frames, chunk)
                     for f in source.read(range(lo, min(lo + chunk, source.num_frames))))
        for frame in every:
            if max_width and frame.shape[1] > max_width:
                height = int(round(frame.shape[0] * max_width / frame.shape[1]))
                frame = cv2.resize(frame, (max_width, height), interpolation=cv2.INTER_AREA)
            frames.append(frame)
            if len(frames) == source.num_frames:
                break
        self.frames = frames
        self.num_frames = len(frames)

    def read(self, indices: Sequence[int]) -> np.ndarray:
        return np.stack([self.frames[i] for i in indices])


def open_clip_source(path: str | Path, cfg: DataConfig) -> ClipSource:
    """``open_recording`` wrapped in ``CachedClipSource`` when ``cfg.cache_frames``."""
    source = open_recording(path, cfg)
    return CachedClipSource(source, cfg.max_width) if cfg.cache_frames else source


def open_recording(path: str | Path, cfg: DataConfig) -> ClipSource:
    """The source for ``path``: a bag folder, an image folder or a video file; ``SourceError`` otherwise."""
    path = Path(path)
    if not path.exists():
        raise SourceError(f"data path {path}: no such file or folder")
    if is_bag(path):
        return BagClipSource(path, cfg.bag_topic, cfg.max_bag_frames)
    if path.is_dir():
        return FolderClipSource(path)
    if path.suffix.lower() not in VIDEO_EXTENSIONS:
        raise SourceError(f"data path {path}: not a video ({', '.join(sorted(VIDEO_EXTENSIONS))}), image folder or bag")
    return VideoClipSource(path)


@dataclass(frozen=True)
class ClipSpec:
    """Which frames of which source, and the geometry applied to all of them (crop origin as fractions)."""

    source: int
    start: int
    gap: int
    scale: float
    crop_y: float
    crop_x: float
    flip: bool
    shifts: tuple[tuple[int, int], ...] = ()  # per-frame (dy, dx) offsets of the crop, pixels


class ClipSampler:
    """Deterministic clip specs per step; ``specs(step, rank, world)`` is this process's share."""

    def __init__(self, sources: Sequence[ClipSource], cfg: DataConfig, batch_size: int, seed: int) -> None:
        usable = [s for s in sources if s.num_frames >= cfg.clip_len]
        if not usable:
            raise SourceError(f"no data source has at least clip_len={cfg.clip_len} frames")
        self.sources = list(sources)
        self.usable = [i for i, s in enumerate(sources) if s.num_frames >= cfg.clip_len]
        self.cfg = cfg
        self.batch_size = batch_size
        self.seed = seed

    def _spec(self, rng: np.random.Generator) -> ClipSpec:
        cfg = self.cfg
        index = self.usable[int(rng.integers(len(self.usable)))]
        frames = self.sources[index].num_frames
        fitting = [g for g in cfg.gaps if (cfg.clip_len - 1) * g < frames] or [1]
        gap = int(fitting[int(rng.integers(len(fitting)))])
        start = int(rng.integers(frames - (cfg.clip_len - 1) * gap))
        scale = float(rng.uniform(cfg.scale[0], cfg.scale[1]))
        flip = bool(cfg.flip and rng.random() < 0.5)
        crop_y, crop_x = float(rng.random()), float(rng.random())
        shifts = tuple((int(dy), int(dx)) for dy, dx in rng.integers(-cfg.jitter, cfg.jitter + 1, (cfg.clip_len, 2))
                       ) if cfg.jitter > 0 else ()
        return ClipSpec(index, start, gap, scale, crop_y, crop_x, flip, shifts)

    def specs(self, step: int, rank: int = 0, world: int = 1) -> list[ClipSpec]:
        rng = np.random.default_rng([self.seed, step])
        everyone = [self._spec(rng) for _ in range(self.batch_size * world)]
        return everyone[rank::world]


def _resize_for_crop(frame: np.ndarray, scale: float, crop: tuple[int, int], min_side: int) -> np.ndarray:
    height, width = frame.shape[:2]
    factor = max(scale, crop[0] / height, crop[1] / width, min_side / min(height, width))
    if abs(factor - 1.0) < 1e-3:
        return frame
    size = (max(crop[1], int(round(width * factor))), max(crop[0], int(round(height * factor))))
    return cv2.resize(frame, size, interpolation=cv2.INTER_AREA if factor < 1 else cv2.INTER_LINEAR)


def load_clip(source: ClipSource, spec: ClipSpec, cfg: DataConfig) -> np.ndarray:
    """``(T, h, w, 3)`` uint8 RGB: the spec's frames, resized, cropped and flipped alike."""
    indices = [spec.start + i * spec.gap for i in range(cfg.clip_len)]
    crop = (int(cfg.crop[0]), int(cfg.crop[1]))
    out = []
    for t, frame in enumerate(source.read(indices)):
        frame = _resize_for_crop(frame, spec.scale, crop, cfg.min_side)
        dy, dx = spec.shifts[t] if spec.shifts else (0, 0)
        y = min(max(int(round(spec.crop_y * (frame.shape[0] - crop[0]))) + dy, 0), frame.shape[0] - crop[0])
        x = min(max(int(round(spec.crop_x * (frame.shape[1] - crop[1]))) + dx, 0), frame.shape[1] - crop[1])
        frame = frame[y:y + crop[0], x:x + crop[1]]
        out.append(frame[:, ::-1] if spec.flip else frame)
    return np.ascontiguousarray(np.stack(out))


def clips_to_tensor(clips: Sequence[np.ndarray]) -> torch.Tensor:
    """List of ``(T, h, w, 3)`` uint8 -> ``(B, T, 3, h, w)`` float in [0, 1]."""
    return torch.from_numpy(np.stack(clips)).permute(0, 1, 4, 2, 3).float().div_(255.0)


class ClipLoader:
    """``batch(step, rank, world) -> (B, T, 3, h, w)`` clips for one process and one step.

    With ``cfg.workers > 0`` the clips of the next ``cfg.prefetch`` steps are prepared in a thread pool while the
    current step trains; a batch depends only on ``(seed, step, rank, world)``, so the result is the same."""

    def __init__(self, paths: Sequence[str | Path], cfg: DataConfig, batch_size: int, seed: int) -> None:
        if not paths:
            raise SourceError("no training data: give --data PATH (video files, image folders or bags)")
        self.cfg = cfg
        self.sources = [open_clip_source(p, cfg) for p in paths]
        self.sampler = ClipSampler(self.sources, cfg, batch_size, seed)
        self._pool = ThreadPoolExecutor(cfg.workers, thread_name_prefix="clips") if cfg.workers > 0 else None
        self._pending: dict[tuple[int, int, int], list[Future]] = {}

    def _submit(self, step: int, rank: int, world: int) -> list[Future]:
        assert self._pool is not None
        return [self._pool.submit(load_clip, self.sources[s.source], s, self.cfg)
                for s in self.sampler.specs(step, rank, world)]

    def batch(self, step: int, rank: int = 0, world: int = 1) -> torch.Tensor:
        if self._pool is None:
            specs = self.sampler.specs(step, rank, world)
            return clips_to_tensor([load_clip(self.sources[s.source], s, self.cfg) for s in specs])
        for ahead in range(step, step + 1 + max(self.cfg.prefetch, 0)):
            if (ahead, rank, world) not in self._pending:
                self._pending[(ahead, rank, world)] = self._submit(ahead, rank, world)
        futures = self._pending.pop((step, rank, world))
        for key in [k for k in self._pending if k[0] < step]:  # a resumed or skipped run leaves stale work
            del self._pending[key]
        return clips_to_tensor([f.result() for f in futures])

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=False, cancel_futures=True)
            self._pool = None
