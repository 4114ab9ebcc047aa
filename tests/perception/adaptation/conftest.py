"""One thread per test (the CPU is shared) and a small dualstream_tiny encoder."""

from __future__ import annotations

import pytest
import torch

from perception.adaptation import AdaptationConfig, OnlineAdapter
from perception.models import create_encoder


@pytest.fixture(autouse=True)
def one_thread(one_torch_thread) -> None:
    """Applies the shared one-thread fixture (tests/conftest.py) to every test here."""


@pytest.fixture
def tiny():
    torch.manual_seed(0)
    return create_encoder("dualstream_tiny").eval()


def small_cfg(**overrides) -> AdaptationConfig:
    """The self-supervised objective (patch, temporal, anchor, collapse) on norm+adapters, one step an update:
    the general path; the exposure path (the default) has its own tests in test_exposure.py."""
    base = dict(enabled=True, buffer_size=8, min_frames=4, train_width=64, train_height=48, clip_length=3,
                gaps=(1, 2), max_updates_per_s=0.0, compute_share=1.0, walk_grid=4, params="norm+adapters",
                input_adapter=False, lr=1e-4, patch_weight=1.0, temporal_weight=1.0, anchor_weight=1.0,
                collapse_weight=0.1, exposure_weight=0.0, steps_per_update=1, drift_max=0.35)
    base.update(overrides)
    return AdaptationConfig(**base)


def filled_adapter(model, frames: int = 8, seed: int = 0, **overrides) -> OnlineAdapter:
    """An adapter whose buffer holds ``frames`` smooth random frames (a drifting blob pattern)."""
    adapter = OnlineAdapter(model, small_cfg(**overrides))
    g = torch.Generator().manual_seed(seed)
    base = torch.rand(1, 3, 12, 16, generator=g)
    for i in range(frames):
        frame = torch.nn.functional.interpolate(base.roll(i, dims=-1), size=(48, 64), mode="bilinear")
        adapter.after_frame((frame + 0.05 * torch.rand(1, 3, 48, 64, generator=g)).clamp(0, 1))
    return adapter
