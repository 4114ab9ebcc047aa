"""Pretraining on generated footage: real steps lower the loss, resume continues the same trajectory, files."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
import torch

from perception.config import ConfigError
from perception.models.checkpoint import load_checkpoint
from perception.train.config import load_train_config
from perception.train.trainer import Trainer


def _fixed_loss(trainer: Trainer, clip: torch.Tensor) -> float:
    trainer.student.eval()
    trainer.objective.eval()
    with torch.no_grad():
        total, _, _ = trainer.objective(trainer.student, trainer.teacher, clip, torch.Generator().manual_seed(0))
    trainer.objective.train()
    return float(total)


def test_training_steps_lower_the_loss(clip_folder: Path, tmp_path: Path, tiny_overrides: list[str]) -> None:
    cfg = load_train_config(None, tiny_overrides + ["optim.steps=25", "loss.crw=1.0", "loss.colour=1.0"])
    trainer = Trainer(cfg, [str(clip_folder)], tmp_path / "run")
    clip = torch.cat([trainer.loader.batch(s) for s in range(3)])  # 6 fixed clips
    before = _fixed_loss(trainer, clip)
    summary = trainer.fit(progress=False)
    after = _fixed_loss(trainer, clip)
    assert summary["steps"] == 25
    assert after < 0.9 * before, (before, after)
    rows = list(csv.DictReader(open(tmp_path / "run" / "train_log.csv")))
    assert [int(r["step"]) for r in rows] == list(range(1, 26))
    assert all(float(r["crw"]) > 0 and float(r["colour"]) > 0 for r in rows)
    assert rows[0]["patch_nce"] == "" and rows[0]["variance"] == ""  # weight 0: never computed


def test_resume_continues_the_same_trajectory(clip_video: Path, tmp_path: Path, tiny_overrides: list[str]) -> None:
    common = tiny_overrides + ["loss.patch_nce=0.5", "loss.variance=0.05", "run.metrics_every=2"]
    straight = Trainer(load_train_config(None, common + ["optim.steps=6"]), [str(clip_video)], tmp_path / "a")
    straight.fit(progress=False)
    first = Trainer(load_train_config(None, common + ["optim.steps=6"]), [str(clip_video)], tmp_path / "b")
    first.cfg.optim.steps = 3  # interrupted after 3 of the 6 steps (same schedules: they read the config's 6)
    first.lr_at = straight.lr_at
    first.momentum_at = straight.momentum_at
    first.fit(progress=False)
    resumed = Trainer(load_train_config(None, common + ["optim.steps=6"]), [str(clip_video)], tmp_path / "b")
    resumed.fit(resume=True, progress=False)
    assert resumed.step == 6
    for (name, a), (_, b) in zip(straight.student.state_dict().items(), resumed.student.state_dict().items()):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6, msg=f"student {name}")
    for (name, a), (_, b) in zip(straight.teacher.state_dict().items(), resumed.teacher.state_dict().items()):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6, msg=f"teacher {name}")
    fresh = Trainer(load_train_config(None, common + ["optim.steps=6"]), [str(clip_video)], tmp_path / "c")
    moved = max((a - b).abs().max().item() for a, b in zip(fresh.student.state_dict().values(),
                                                            resumed.student.state_dict().values()))
    assert moved > 1e-4  # the weights did train


def test_outputs_config_and_exported_checkpoint(clip_folder: Path, tmp_path: Path, tiny_overrides: list[str]) -> None:
    cfg = load_train_config(None, tiny_overrides + ["optim.steps=2", "run.export_dtype=float16"])
    Trainer(cfg, [str(clip_folder)], tmp_path / "run").fit(progress=False)
    out = tmp_path / "run"
    assert load_train_config(out / "config.yaml") == cfg  # the resolved config reproduces the run
    model, meta = load_checkpoint(out / "model")
    assert meta["name"] == "dualstream_tiny" and meta["provenance"]["steps"] == 2
    data = meta["provenance"]["data"]
    assert len(data) == 24 and all(len(entry["sha256"]) == 64 and entry["bytes"] > 0 for entry in data)
    assert {"cpu", "torch", "cpu_count"} <= set(meta["provenance"]["hardware"])
    assert "commit" in meta["provenance"]["git"]
    assert all(p.dtype == torch.float32 for p in model.parameters())  # float16 file, float32 model
    state = json.loads((out / "checkpoints" / "last.json").read_text())
    assert state["step"] == 2 and state["config"]["model"]["name"] == "dualstream_tiny"
    with torch.no_grad():
        dense = model(torch.rand(1, 3, 64, 96)).dense
    assert dense.shape == (1, 32, 8, 12) and torch.isfinite(dense).all()


def test_config_errors_name_the_key() -> None:
    with pytest.raises(ConfigError, match="optim.stepz"):
        load_train_config(None, ["optim.stepz=3"])
    with pytest.raises(ConfigError, match="data.crop"):
        load_train_config(None, ["data.crop=[60,64]"])
    with pytest.raises(ConfigError, match="loss.colour"):
        load_train_config(None, ["loss.colour=-1"])


def test_time_budget_stops_and_saves(clip_folder: Path, tmp_path: Path, tiny_overrides: list[str]) -> None:
    cfg = load_train_config(None, tiny_overrides + ["optim.steps=100000", "run.max_seconds=0.5"])
    summary = Trainer(cfg, [str(clip_folder)], tmp_path / "run").fit(progress=False)
    assert 1 <= summary["steps"] < 100000
    model, meta = load_checkpoint(tmp_path / "run" / "model")
    assert meta["provenance"]["steps"] == summary["steps"]


def test_schedules_fitted_to_the_time_budget(clip_folder: Path, tmp_path: Path, tiny_overrides: list[str]) -> None:
    cfg = load_train_config(None, tiny_overrides + ["optim.steps=100000", "optim.min_lr=0.0001", "run.max_seconds=6",
                                                    "run.fit_steps_to_time=true"])
    trainer = Trainer(cfg, [str(clip_folder)], tmp_path / "run")
    summary = trainer.fit(progress=False)
    rows = list(csv.DictReader(open(tmp_path / "run" / "train_log.csv")))
    assert 20 < trainer.total_steps < 100000  # the schedule was fitted to the budget
    # the run ends on the schedule (or, on a machine slowed down after the last fit, close to its end)
    # (a heavily shared CPU can slow the steps after the last fit: the margin allows for some of that)
    assert summary["steps"] >= 0.7 * trainer.total_steps, (summary["steps"], trainer.total_steps)
    assert float(rows[-1]["lr"]) < 0.0001 + 0.3 * (0.003 - 0.0001)
    _, meta = load_checkpoint(tmp_path / "run" / "model")
    assert meta["provenance"]["schedule_steps"] == trainer.total_steps
