"""OnlineAdapter on dualstream_tiny: updates touch only the subset and reach the serving model at a frame boundary;
the guard trips on a forced collapse and on a huge learning rate; rollback restores the snapshot exactly; fallback
serves the source weights; the background worker never lets inference see a half-updated set."""

from __future__ import annotations

import time

import pytest

import torch

from perception.adaptation import ADAPTING, FALLBACK_SOURCE, ROLLED_BACK, load_state
from perception.adaptation.params import clone_set, sets_equal
from perception.models import create_encoder

from .conftest import filled_adapter


def test_updates_change_the_subset_only_and_reach_serving_at_the_frame_boundary(tiny):
    before = {k: v.clone() for k, v in tiny.state_dict().items()}
    adapter = filled_adapter(tiny, lr=1e-2)
    results = [adapter.step() for _ in range(3)]
    assert all(r is not None and r.action in ("none", "snapshot") for r in results)
    assert [r.version for r in results] == [1, 2, 3]
    assert set(results[0].parts) == {"patch", "temporal", "anchor", "collapse"}
    assert results[0].parts["anchor"] == 0.0 and results[-1].parts["anchor"] > 0.0
    # the serving model is untouched until the inference side applies the set
    assert all(torch.equal(before[k], v) for k, v in tiny.state_dict().items())
    assert adapter.before_frame() == 3
    after = tiny.state_dict()
    changed = {k for k in after if not torch.equal(before[k], after[k])}
    assert changed and changed <= set(adapter.names)
    assert sets_equal(adapter.serving, adapter.student)
    assert adapter.before_frame() is None


def test_forced_collapse_trips_the_guard_and_rollback_restores_the_snapshot_exactly(tiny):
    adapter = filled_adapter(tiny, lr=1e-3, snapshot_every=2)
    for _ in range(2):
        assert adapter.step().action in ("none", "snapshot")
    snapshot = clone_set(adapter.snapshot)
    assert sets_equal(snapshot, adapter.student)                 # taken at the 2nd good update
    with torch.no_grad():                                        # collapse: every normalisation scale to zero
        for name, p in adapter.student.items():
            if name.endswith("weight"):
                p.zero_()
    for group in adapter.optimizer.param_groups:
        group["lr"] = 0.0                                        # so the step keeps the collapsed weights
    result = adapter.step()
    assert result.action == "rollback", result
    assert any(r.startswith("collapse") for r in result.reasons), result.reasons
    assert adapter.guard.status == ROLLED_BACK and adapter.guard.rollbacks == 1
    assert all(torch.equal(adapter.student[n], snapshot[n]) for n in adapter.names)
    assert adapter.before_frame() == result.version
    assert all(torch.equal(adapter.serving[n], snapshot[n]) for n in adapter.names)
    for group in adapter.optimizer.param_groups:
        group["lr"] = 1e-3
    assert adapter.step().action in ("none", "snapshot") and adapter.guard.status == ADAPTING


def test_huge_learning_rate_trips_then_falls_back_to_the_source_and_reset_resumes(tiny):
    adapter = filled_adapter(tiny, lr=5.0, max_trips=2, trip_window_s=600.0)
    actions = [adapter.step().action for _ in range(2)]
    assert actions == ["rollback", "fallback"], actions
    assert adapter.guard.status == FALLBACK_SOURCE and adapter.guard.trips == 2
    assert adapter.step() is None and not adapter.ready()
    adapter.before_frame()
    assert sets_equal(adapter.serving, adapter.source)
    pushed = adapter.buffer.pushed
    adapter.after_frame(torch.rand(1, 3, 48, 64))
    assert adapter.buffer.pushed == pushed                       # no buffering once fallen back
    assert "reset" in adapter.reset()
    assert adapter.guard.status == ADAPTING and adapter.updates == 0 and adapter.ready()


def test_background_worker_and_inference_only_ever_see_whole_versions(tiny):
    adapter = filled_adapter(tiny, lr=1e-2, max_updates_per_s=50.0)
    recorded: dict[int, dict[str, torch.Tensor]] = {}
    publish = adapter.versions.publish

    def recording_publish(values, clone=True, attachment=None):
        snap = clone_set(values)
        version = publish(values, clone, attachment)
        recorded[version] = snap
        return version

    adapter.versions.publish = recording_publish                 # records what was published; behaviour unchanged
    served: dict[int, dict[str, torch.Tensor]] = {}
    frames = torch.rand(6, 1, 3, 48, 64)
    adapter.start()
    try:
        deadline = time.monotonic() + 30.0
        i = 0
        while len(served) < 3 and time.monotonic() < deadline:
            version = adapter.before_frame()
            with torch.inference_mode():
                out = tiny(frames[i % 6])
            adapter.after_frame(frames[i % 6], out)
            if version is not None:
                served[version] = clone_set(adapter.serving)
            i += 1
    finally:
        adapter.stop(save=False)
    assert len(served) >= 3, f"only {len(served)} versions applied in 30 s"
    for version, values in served.items():
        assert sets_equal(values, recorded[version]), f"version {version} served differs from what was published"
    assert adapter.stats()["updates"] >= len(served)


def test_budget_wait_respects_rate_and_compute_share(tiny):
    adapter = filled_adapter(tiny, max_updates_per_s=2.0, compute_share=0.25)
    assert adapter.cfg.budget_wait(0.1) == 0.4                       # rate: 0.5 s period; share: 3 x 0.1 = 0.3
    assert abs(adapter.cfg.budget_wait(0.5) - 1.5) < 1e-9            # share dominates


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_updates_run_on_their_own_stream_and_publish_complete_sets():
    torch.manual_seed(0)
    model = create_encoder("dualstream_tiny").eval().cuda()
    adapter = filled_adapter(model, lr=1e-2)
    assert adapter._stream is not None and adapter.device.type == "cuda"
    results = [adapter.step() for _ in range(3)]
    assert all(r is not None and r.version is not None for r in results)
    assert adapter.before_frame() == results[-1].version
    assert sets_equal(adapter.serving, adapter.student)
    assert all(t.device.type == "cuda" for t in adapter.versions.latest()[1].values())


def test_buffer_every_keeps_every_nth_frame(tiny):
    adapter = filled_adapter(tiny, frames=0, buffer_every=3)
    for i in range(10):
        adapter.after_frame(torch.full((1, 3, 48, 64), i / 10.0))
    kept = [round(float(f.float().mean()) / 255.0 * 10) for f in adapter.buffer.ordered()]
    assert kept == [0, 3, 6, 9] and adapter.frames_seen == 10


def test_worker_saves_periodically_and_on_stop(tiny, tmp_path):
    adapter = filled_adapter(tiny, state_dir=str(tmp_path), save_every_s=0.0, max_updates_per_s=20.0)
    adapter.start()
    try:
        deadline = time.monotonic() + 30.0
        while time.monotonic() < deadline and not (tmp_path / "adapted.json").exists():
            time.sleep(0.02)
    finally:
        adapter.stop(save=True)
    assert (tmp_path / "adapted.json").exists(), "no periodic save within 30 s"
    saved = load_state(tmp_path, adapter.source_sha256)
    assert saved.meta["updates"] == adapter.updates >= 1
    assert all(torch.equal(saved.tensors[f"adapted/{n}"], adapter.student[n].detach()) for n in adapter.names)
