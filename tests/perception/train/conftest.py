"""Generated footage for the pretraining tests: a textured background with two coloured squares moving across it,
written as PNG frames (an image folder) or an MP4 (PyAV), small enough for a few training steps on CPU."""

from __future__ import annotations

from pathlib import Path

import av
import cv2
import numpy as np
import pytest


def moving_squares(num_frames: int = 24, height: int = 96, width: int = 128, seed: int = 0) -> np.ndarray:
    """``(T, H, W, 3)`` uint8 RGB: smooth random texture, a red and a blue square moving 3 px a frame."""
    rng = np.random.default_rng(seed)
    texture = cv2.resize(rng.integers(0, 255, (height // 8, width // 8, 3), dtype=np.uint8), (width, height),
                         interpolation=cv2.INTER_CUBIC)
    frames = []
    for t in range(num_frames):
        frame = texture.copy()
        x, y = (5 + 3 * t) % (width - 24), 10 + (2 * t) % (height - 40)
        frame[y:y + 20, x:x + 20] = (220, 30, 30)
        frame[height - y - 24:height - y - 4, width - x - 24:width - x - 4] = (30, 40, 220)
        frames.append(frame)
    return np.stack(frames)


@pytest.fixture()
def clip_folder(tmp_path: Path) -> Path:
    folder = tmp_path / "frames"
    folder.mkdir()
    for i, frame in enumerate(moving_squares()):
        cv2.imwrite(str(folder / f"{i:04d}.png"), cv2.cvtColor(frame, cv2.COLOR_RGB2BGR))
    return folder


@pytest.fixture()
def clip_video(tmp_path: Path) -> Path:
    path = tmp_path / "clip.mp4"
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=10)
        stream.width, stream.height, stream.pix_fmt = 128, 96, "yuv420p"
        stream.options = {"crf": "18"}
        for frame in moving_squares(seed=1):
            for packet in stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path


@pytest.fixture()
def tiny_overrides() -> list[str]:
    """Config overrides for a seconds-long run of ``dualstream_tiny`` on 64x64 crops."""
    return list(TINY_OVERRIDES)


TINY_OVERRIDES = [
    "model.name=dualstream_tiny", "model.freeze=[]", "data.clip_len=3", "data.gaps=[1,2]", "data.crop=[64,64]",
    "data.scale=[1.0,1.0]", "loss.colour_gaps=[1]", "optim.batch_size=2", "optim.warmup_steps=0", "optim.lr=0.003",
    "run.log_every=1", "run.metrics_every=0", "run.checkpoint_every=1000", "run.tensorboard=false", "run.threads=1",
]
