"""Saving and resuming the adapter's state; the state survives kill -9 in the middle of a save."""

from __future__ import annotations

import json
import multiprocessing
import os
import random
import signal
import time
from pathlib import Path

import pytest
import torch

from perception.adaptation import OnlineAdapter, StateMismatch, load_state, save_state
from perception.adaptation.params import sets_equal
from perception.models import create_encoder

from .conftest import filled_adapter, small_cfg


def test_resume_restores_weights_teacher_snapshot_optimizer_and_guard(tiny, tmp_path):
    adapter = filled_adapter(tiny, lr=1e-2, snapshot_every=2, state_dir=str(tmp_path))
    for _ in range(3):
        adapter.step()
    path = adapter.save()
    manifest = json.loads(path.read_text())
    assert manifest["updates"] == 3 and manifest["source_sha256"] == adapter.source_sha256
    assert manifest["buffer"]["pushed"] == 8 and "frames" not in json.dumps(manifest)

    torch.manual_seed(0)
    fresh_model = create_encoder("dualstream_tiny").eval()           # the same source weights
    fresh = OnlineAdapter(fresh_model, small_cfg(lr=1e-2, snapshot_every=2, state_dir=str(tmp_path)))
    result = fresh.resume()
    assert result.resumed, result.reason
    assert fresh.updates == 3 and fresh.guard.good_updates == adapter.guard.good_updates
    assert fresh.guard.loss_ema == pytest.approx(adapter.guard.loss_ema)
    assert fresh.buffer.pushed == 8 and len(fresh.buffer) == 0    # statistics, not frames
    for mine, theirs in ((fresh.student, adapter.student), (fresh.teacher, adapter.teacher),
                         (fresh.snapshot, adapter.snapshot)):
        assert sets_equal(mine, theirs)
    for name in adapter.names:
        a, b = adapter.optimizer.state[adapter.student[name]], fresh.optimizer.state[fresh.student[name]]
        assert set(a) == set(b) and all(torch.equal(a[k], b[k]) for k in a)
    assert fresh.before_frame() is not None and sets_equal(fresh.serving, adapter.student)


def test_resume_refuses_another_source_or_subset_and_says_why(tiny, tmp_path):
    adapter = filled_adapter(tiny, state_dir=str(tmp_path))
    adapter.step()
    adapter.save()
    torch.manual_seed(1)                                              # other source weights
    other = OnlineAdapter(create_encoder("dualstream_tiny").eval(), small_cfg(state_dir=str(tmp_path)))
    result = other.resume()
    assert not result.resumed and "source model sha256" in result.reason and "starting from the source" in result.reason
    assert other.updates == 0 and sets_equal(other.student, other.source)

    torch.manual_seed(0)
    subset = OnlineAdapter(create_encoder("dualstream_tiny").eval(),
                           small_cfg(params="patterns", param_patterns="fusion.embed_norm.*", state_dir=str(tmp_path)))
    result = subset.resume()
    assert not result.resumed and "another parameter subset" in result.reason

    empty = OnlineAdapter(tiny, small_cfg(state_dir=str(tmp_path / "none")))
    assert "no saved adaptation state" in empty.resume().reason

    manifest = json.loads((tmp_path / "adapted.json").read_text())
    weights = tmp_path / manifest["weights"]
    data = bytearray(weights.read_bytes())
    data[-1] ^= 0xFF
    weights.write_bytes(bytes(data))
    with pytest.raises(StateMismatch, match="does not match the manifest"):
        load_state(tmp_path, adapter.source_sha256)


def _save_forever(state_dir: str, start: int) -> None:
    """Child process: save states whose tensors all hold the iteration number, as fast as possible."""
    torch.set_num_threads(1)
    i = start
    while True:
        i += 1
        tensors = {"a": torch.full((1_500_000,), float(i)), "b": torch.full((300, 1000), -float(i)),
                   "step": torch.tensor(float(i))}
        save_state(state_dir, tensors, {"iteration": i}, source_sha256="source")


def test_kill_9_during_saves_always_leaves_a_consistent_loadable_state(tmp_path):
    ctx = multiprocessing.get_context("fork")
    rng = random.Random(1234)
    last = 0
    interrupted = 0
    for _ in range(6):
        child = ctx.Process(target=_save_forever, args=(str(tmp_path), last), daemon=True)
        child.start()
        deadline = time.monotonic() + 20.0
        while time.monotonic() < deadline:                           # at least one save of this child landed
            try:
                if json.loads((tmp_path / "adapted.json").read_text())["iteration"] > last:
                    break
            except (FileNotFoundError, json.JSONDecodeError, KeyError):
                pass
            time.sleep(0.005)
        time.sleep(rng.uniform(0.0, 0.25))
        os.kill(child.pid, signal.SIGKILL)
        child.join(timeout=10.0)
        assert child.exitcode == -signal.SIGKILL
        interrupted += any(p.name.endswith(".tmp") for p in Path(tmp_path).iterdir())
        state = load_state(tmp_path, "source")                       # never raises: manifest and weights agree
        i = state.meta["iteration"]
        assert i > last
        assert torch.equal(state.tensors["a"], torch.full((1_500_000,), float(i)))
        assert torch.equal(state.tensors["b"], torch.full((300, 1000), -float(i)))
        assert float(state.tensors["step"]) == i
        last = i
    weights = list(Path(tmp_path).glob("weights-*.safetensors"))
    assert 1 <= len(weights) <= 2, weights                           # the current one (+ one a kill left behind)
    print(f"kills that left a half-written temporary file: {interrupted}/6")
