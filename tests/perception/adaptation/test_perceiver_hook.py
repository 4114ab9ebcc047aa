"""The perceiver's adapter hook: frames of the adapted stream reach the buffer, a published set is applied before
the next encode, other streams are not buffered."""

from __future__ import annotations

import numpy as np

from perception.adaptation import attach_online_adapter
from perception.adaptation.params import sets_equal
from perception.config import Config
from perception.io.frame import Frame
from perception.runtime.perceiver import Perceiver

from .conftest import small_cfg


def _perceiver() -> Perceiver:
    cfg = Config()
    cfg.encoder.name, cfg.encoder.input_width, cfg.encoder.input_height = "dualstream_tiny", 64, 48
    cfg.runtime.device, cfg.runtime.precision, cfg.runtime.threads, cfg.runtime.warmup_frames = "cpu", "fp32", 1, 0
    cfg.runtime.publish_pca = cfg.runtime.publish_debug = False
    return Perceiver(cfg)


def test_adapter_hook_buffers_frames_and_swaps_at_the_next_frame(tmp_path):
    perceiver = _perceiver()
    adapter, note = attach_online_adapter(perceiver, small_cfg(lr=1e-2, state_dir=str(tmp_path)), start=False)
    assert "no saved adaptation state" in note
    rng = np.random.default_rng(0)
    frames = [Frame(image=rng.integers(0, 255, (48, 64, 3), dtype=np.uint8), stamp_ns=i, seq=i) for i in range(6)]
    for f in frames:
        perceiver.process(f)
    perceiver.process(frames[0], stream="other")
    assert adapter.buffer.pushed == 6
    result = adapter.step()
    assert result is not None and result.version == 1
    assert not sets_equal(adapter.serving, adapter.student)     # not before the frame boundary
    perceiver.process(frames[1])
    assert adapter.versions.applied_version == 1 and sets_equal(adapter.serving, adapter.student)
    assert perceiver.encoder is adapter.model
    adapter.save()
    again, note = attach_online_adapter(_perceiver(), small_cfg(lr=1e-2, state_dir=str(tmp_path)), start=False)
    assert "resumed" in note and again.updates == 1
    perceiver.attach_adapter(None)
    perceiver.process(frames[2])
    assert adapter.buffer.pushed == 7
