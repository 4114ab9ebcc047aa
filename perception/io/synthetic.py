"""A seeded synthetic video with ground truth: textured objects moving over a textured world, seen by a panning camera.

The world is a background texture larger than the view; the camera is a view window whose offset follows a smooth
(sinusoidal) path over it, so every frame has a global translation, as from a panning camera. Objects are rectangles
or ellipses, each with its own texture, moving in world coordinates with smoothly turning velocities and bouncing
off the world's border, so they leave and re-enter the view. Objects are drawn back to front in a fixed depth order,
so they overlap and occlude each other.

Ground truth follows the MOTChallenge convention for visible boxes: ``Frame.boxes`` holds, for every object with at
least ``min_visible_px`` visible pixels, the ``x, y, w, h`` box of its *visible* pixels (after occlusion by nearer
objects and clipping to the image); ``Frame.track_ids`` holds the object ids (0-based, stable over the sequence).

Everything random is drawn once from ``numpy.random.default_rng(seed)`` in ``__init__`` (textures and all
trajectories), so iterating twice, or calling ``frame(i)`` in any order, gives identical frames. Rendering is array
slicing and masked copies of precomputed textures, a few milliseconds per 640x480 frame.

``scenario="occlusion"`` makes object 0 a static occluder (in world coordinates, in front of every other object) and
object 1 a smaller object that crosses behind it horizontally, fully hidden for a few frames around
``occlusion_frame``; the other objects move at random.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Iterator

import cv2
import numpy as np

from perception.io.frame import Frame, SourceError

SCENARIOS = ("random", "occlusion")


@dataclass
class _Sprite:
    """The appearance of one object: a texture and the mask of its shape, both ``(h, w)``."""

    texture: np.ndarray  # (h, w, 3) uint8
    mask: np.ndarray  # (h, w) bool
    shape: str


def _smooth_noise(rng: np.random.Generator, height: int, width: int, cell: float) -> np.ndarray:
    """Value noise in about [-1, 1]: a coarse random grid (one value per ``cell`` pixels), bicubically upsampled."""
    gh = max(2, int(math.ceil(height / cell)) + 2)
    gw = max(2, int(math.ceil(width / cell)) + 2)
    coarse = rng.uniform(-1.0, 1.0, size=(gh, gw)).astype(np.float32)
    full = cv2.resize(coarse, (int(gw * cell), int(gh * cell)), interpolation=cv2.INTER_CUBIC)
    return full[:height, :width]


def _background(rng: np.random.Generator, height: int, width: int) -> np.ndarray:
    """Muted colour fields (large scale) with a grey mid-frequency texture, so that camera motion is measurable."""
    img = np.empty((height, width, 3), np.float32)
    base = rng.uniform(90, 160, size=3)
    for c in range(3):
        img[..., c] = base[c] + 35.0 * _smooth_noise(rng, height, width, 96.0)
    detail = 22.0 * _smooth_noise(rng, height, width, 12.0) + 10.0 * _smooth_noise(rng, height, width, 4.0)
    img += detail[..., None]
    return np.clip(img, 0, 255).astype(np.uint8)


def _pattern(rng: np.random.Generator, h: int, w: int) -> np.ndarray:
    """A per-object pattern in [0, 1]: smooth noise, oriented stripes or a checkerboard."""
    kind = rng.integers(3)
    if kind == 0:
        return 0.5 + 0.5 * np.clip(_smooth_noise(rng, h, w, float(rng.uniform(6, 16))), -1, 1)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    if kind == 1:
        angle = rng.uniform(0, math.pi)
        period = rng.uniform(8, 24)
        phase = (xx * math.cos(angle) + yy * math.sin(angle)) * (2 * math.pi / period)
        return 0.5 + 0.5 * np.sin(phase)
    square = int(rng.integers(6, 16))
    return (((xx // square) + (yy // square)) % 2).astype(np.float32)


def _sprite(rng: np.random.Generator, w: int, h: int, shape: str | None = None) -> _Sprite:
    """A textured rectangle or ellipse of ``w x h`` pixels in two saturated random colours."""
    shape = shape or ("rect" if rng.random() < 0.5 else "ellipse")
    c1 = rng.uniform(0, 255, size=3).astype(np.float32)
    c2 = rng.uniform(0, 255, size=3).astype(np.float32)
    c1[rng.integers(3)] = rng.uniform(200, 255)  # keep each object saturated, unlike the muted background
    c2[rng.integers(3)] = rng.uniform(0, 50)
    p = _pattern(rng, h, w)[..., None]
    tex = c1 * (1 - p) + c2 * p + 8.0 * _smooth_noise(rng, h, w, 3.0)[..., None]
    if shape == "rect":
        mask = np.ones((h, w), bool)
    else:
        yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
        mask = ((xx + 0.5 - w / 2) / (w / 2)) ** 2 + ((yy + 0.5 - h / 2) / (h / 2)) ** 2 <= 1.0
    return _Sprite(np.clip(tex, 0, 255).astype(np.uint8), mask, shape)


class SyntheticScene:
    """A deterministic :class:`~perception.io.frame.FrameSource` of ``num_frames`` RGB frames with ground truth.

    ``camera_motion``: the view pans over the world (amplitude ``pan_margin`` pixels); off, the view stays centred.
    ``min_size``/``max_size``: object side lengths in pixels; ``max_speed``: object speed in pixels per frame.
    ``noise_std``: standard deviation of per-frame sensor noise (a precomputed bank of noise images is cycled).
    """

    def __init__(
        self,
        width: int = 640,
        height: int = 480,
        num_frames: int = 300,
        seed: int = 0,
        num_objects: int = 5,
        fps: float = 30.0,
        camera_motion: bool = True,
        scenario: str = "random",
        pan_margin: int = 96,
        min_size: int = 30,
        max_size: int = 150,
        max_speed: float = 4.0,
        noise_std: float = 0.0,
        min_visible_px: int = 25,
        occlusion_frame: int | None = None,
        frame_id: str = "camera_optical_frame",
    ) -> None:
        if width < 64 or height < 64:
            raise SourceError(f"synthetic scene: size {width}x{height} is too small (expected at least 64x64)")
        if num_frames < 1 or fps <= 0:
            raise SourceError(f"synthetic scene: num_frames={num_frames}, fps={fps} (expected >= 1 and > 0)")
        if scenario not in SCENARIOS:
            raise SourceError(f"synthetic scene: unknown scenario '{scenario}' (expected one of {SCENARIOS})")
        if not 8 <= min_size <= max_size:
            raise SourceError(f"synthetic scene: object sizes {min_size}..{max_size} (expected 8 <= min <= max)")
        if scenario == "occlusion" and num_objects < 2:
            raise SourceError("synthetic scene: scenario 'occlusion' needs num_objects >= 2")
        self.name = f"synthetic:{scenario}:seed{seed}"
        self.fps = float(fps)
        self.width, self.height = int(width), int(height)
        self.num_frames = int(num_frames)
        self.frame_id = frame_id
        self.scenario = scenario
        self.min_visible_px = int(min_visible_px)
        self.margin = int(pan_margin)
        rng = np.random.default_rng(seed)
        self.world_w, self.world_h = self.width + 2 * self.margin, self.height + 2 * self.margin
        self.background = _background(rng, self.world_h, self.world_w)
        self.camera = self._camera_path(rng, camera_motion)
        self.sprites: list[_Sprite] = []
        self.positions = np.zeros((self.num_frames, num_objects, 2), np.float64)  # world top-left x, y
        self.depth = np.arange(num_objects)  # drawing order, back to front
        if scenario == "occlusion":
            self._occlusion_layout(rng, num_objects, occlusion_frame, min_size, max_size, max_speed)
        else:
            self._random_layout(rng, num_objects, 0, min_size, max_size, max_speed)
            self.depth = rng.permutation(num_objects)
        self._noise = None
        if noise_std > 0:
            bank = rng.normal(0.0, noise_std, size=(4, self.height, self.width, 3))
            self._noise = np.clip(np.rint(bank), -127, 127).astype(np.int16)

    # ----------------------------------------------------------------------------------------------- simulation
    def _camera_path(self, rng: np.random.Generator, moving: bool) -> np.ndarray:
        """Integer view offsets ``(T, 2)`` into the world: a sum of two slow sines per axis, within the margin."""
        t = np.arange(self.num_frames, dtype=np.float64)
        path = np.full((self.num_frames, 2), float(self.margin))
        if moving:
            for axis in range(2):
                p1, p2 = rng.uniform(150, 300), rng.uniform(60, 120)
                f1, f2 = rng.uniform(0, 2 * math.pi, size=2)
                wave = 0.75 * np.sin(2 * math.pi * t / p1 + f1) + 0.25 * np.sin(2 * math.pi * t / p2 + f2)
                path[:, axis] += 0.95 * self.margin * wave
        return np.clip(np.rint(path), 0, 2 * self.margin).astype(np.int64)

    def _random_layout(self, rng, count: int, first: int, min_size: int, max_size: int, max_speed: float) -> None:
        """Objects ``first..count-1``: random sprites starting mostly in the first view, smoothly turning paths."""
        ox, oy = self.camera[0]
        for k in range(first, count):
            w = int(rng.integers(min_size, max_size + 1))
            h = int(np.clip(w * rng.uniform(0.6, 1.6), min_size, max_size))
            self.sprites.append(_sprite(rng, w, h))
            pos = np.array([ox + rng.uniform(0, self.width - w), oy + rng.uniform(0, self.height - h)], np.float64)
            speed = rng.uniform(1.0, max_speed)
            heading = rng.uniform(0, 2 * math.pi)
            turn = rng.normal(0.0, 0.02)
            lo = np.array([-w / 2, -h / 2])
            hi = np.array([self.world_w - w / 2, self.world_h - h / 2])
            for i in range(self.num_frames):
                self.positions[i, k] = pos
                turn = 0.95 * turn + rng.normal(0.0, 0.006)
                heading += turn
                vel = speed * np.array([math.cos(heading), math.sin(heading)])
                pos = pos + vel
                for axis in range(2):  # bounce off the world border
                    if pos[axis] < lo[axis] or pos[axis] > hi[axis]:
                        pos[axis] = np.clip(pos[axis], lo[axis], hi[axis])
                        heading = math.pi - heading if axis == 0 else -heading

    def _occlusion_layout(self, rng, count: int, at_frame: int | None, min_size: int, max_size: int,
                          max_speed: float) -> None:
        """Object 0: a static occluder in front of everything; object 1 crosses behind it at ``at_frame``."""
        at_frame = self.num_frames // 2 if at_frame is None else int(at_frame)
        occ_w, occ_h, w, h = 100, 110, 52, 44
        self.sprites.append(_sprite(rng, occ_w, occ_h, "rect"))
        self.sprites.append(_sprite(rng, w, h, "ellipse"))
        ox, oy = self.camera[min(at_frame, self.num_frames - 1)]
        occ = np.array([ox + (self.width - occ_w) / 2, oy + (self.height - occ_h) / 2])
        self.positions[:, 0] = occ
        speed = 6.0
        t = np.arange(self.num_frames, dtype=np.float64) - at_frame
        self.positions[:, 1, 0] = occ[0] + (occ_w - w) / 2 + speed * t
        self.positions[:, 1, 1] = occ[1] + (occ_h - h) / 2
        self._random_layout(rng, count, 2, min_size, max_size, max_speed)
        self.depth = np.concatenate([np.arange(count - 1, 0, -1), [0]])  # occluder last, i.e. in front

    # ------------------------------------------------------------------------------------------------ rendering
    def frame(self, index: int) -> Frame:
        """Render frame ``index`` (0-based) with its ground truth."""
        if not 0 <= index < self.num_frames:
            raise IndexError(f"synthetic scene: frame {index} out of range 0..{self.num_frames - 1}")
        ox, oy = (int(v) for v in self.camera[index])
        img = self.background[oy:oy + self.height, ox:ox + self.width].copy()
        label = np.full((self.height, self.width), -1, np.int16)
        regions: dict[int, tuple[slice, slice]] = {}
        for k in self.depth:
            sprite = self.sprites[k]
            sh, sw = sprite.mask.shape
            x0 = int(round(self.positions[index, k, 0])) - ox
            y0 = int(round(self.positions[index, k, 1])) - oy
            vx0, vy0 = max(x0, 0), max(y0, 0)
            vx1, vy1 = min(x0 + sw, self.width), min(y0 + sh, self.height)
            if vx1 <= vx0 or vy1 <= vy0:
                continue
            view = (slice(vy0, vy1), slice(vx0, vx1))
            local = (slice(vy0 - y0, vy1 - y0), slice(vx0 - x0, vx1 - x0))
            mask = sprite.mask[local]
            np.copyto(img[view], sprite.texture[local], where=mask[..., None])
            label[view][mask] = k
            regions[int(k)] = view
        boxes, ids, visible = [], [], []
        for k in sorted(regions):
            ys, xs = regions[k]
            own = label[regions[k]] == k
            count = int(own.sum())
            if count < self.min_visible_px:
                continue
            rows = np.flatnonzero(own.any(axis=1))
            cols = np.flatnonzero(own.any(axis=0))
            boxes.append([xs.start + cols[0], ys.start + rows[0], cols[-1] - cols[0] + 1, rows[-1] - rows[0] + 1])
            ids.append(k)
            visible.append(count / float(self.sprites[k].mask.sum()))
        if self._noise is not None:
            img = cv2.add(img, self._noise[index % len(self._noise)], dtype=cv2.CV_8U)
        return Frame(
            image=img,
            stamp_ns=int(round(index * 1e9 / self.fps)),
            frame_id=self.frame_id,
            seq=index,
            boxes=np.asarray(boxes, np.float32).reshape(-1, 4),
            track_ids=np.asarray(ids, np.int64),
            meta={"camera_offset": (ox, oy), "visible_fraction": np.asarray(visible, np.float32)},
        )

    # --------------------------------------------------------------------------------------- FrameSource protocol
    @property
    def size(self) -> tuple[int, int]:
        return self.width, self.height

    def __len__(self) -> int:
        return self.num_frames

    def __iter__(self) -> Iterator[Frame]:
        for i in range(self.num_frames):
            yield self.frame(i)

    def close(self) -> None:
        """Nothing to release; present for the FrameSource protocol."""

    def __enter__(self) -> "SyntheticScene":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
