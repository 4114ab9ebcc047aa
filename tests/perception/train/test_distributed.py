"""Data-parallel pretraining with two CPU processes on gloo (torchrun): both ranks end with identical weights,
different from the start, and only rank 0 writes the run's files."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from perception.models import create_encoder

WORKER = Path(__file__).with_name("ddp_worker.py")


@pytest.mark.slow
def test_two_ranks_on_gloo_end_identical(clip_folder: Path, tmp_path: Path, tiny_overrides: list[str]) -> None:
    overrides = tiny_overrides + ["optim.steps=4", "optim.batch_size=1", "run.seed=3"]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(Path.cwd())}
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
               str(WORKER), str(clip_folder), str(tmp_path), *overrides]
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-3000:]
    rank0, rank1 = load_file(str(tmp_path / "rank0.safetensors")), load_file(str(tmp_path / "rank1.safetensors"))
    assert rank0.keys() == rank1.keys()
    for name in rank0:
        assert torch.equal(rank0[name], rank1[name]), name
    torch.manual_seed(3)
    start = create_encoder("dualstream_tiny").state_dict()
    assert max((rank0[k] - start[k]).abs().max().item() for k in start) > 1e-4
    files = sorted(p.name for p in (tmp_path / "run").iterdir())
    assert files == ["checkpoints", "config.yaml", "model.json", "model.safetensors", "train_log.csv"]
    lines = (tmp_path / "run" / "train_log.csv").read_text().splitlines()
    assert len(lines) == 1 + 4  # one writer: a header and one row a step
