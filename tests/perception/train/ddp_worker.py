"""Run by ``torchrun`` in test_distributed.py: a few pretraining steps on every rank, then each rank writes its
own final student weights (``rank<r>.safetensors``) so the test can compare them."""

from __future__ import annotations

import sys
from pathlib import Path

from safetensors.torch import save_file

from perception.train.config import load_train_config
from perception.train.distributed import init_distributed, shutdown_distributed
from perception.train.trainer import Trainer


def main(data: str, out: str, *overrides: str) -> None:
    info = init_distributed("cpu")
    cfg = load_train_config(None, list(overrides))
    trainer = Trainer(cfg, [data], Path(out) / "run", info)
    trainer.fit(progress=False)
    state = {k: v.contiguous() for k, v in trainer.student.state_dict().items()}
    save_file(state, str(Path(out) / f"rank{info.rank}.safetensors"))
    shutdown_distributed(info)


if __name__ == "__main__":
    main(*sys.argv[1:])
