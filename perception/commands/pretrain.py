"""Self-supervised pretraining of an encoder on video files, image folders and bags (single process or torchrun).

``dualstream pretrain --config config/pretrain_dualstream_s.yaml --data clip.mp4 frames/ bag/ --out runs/pre
[--set optim.steps=200] [--resume]``; under ``torchrun --nproc_per_node=N -m perception.cli pretrain ...`` the
processes share the clips (gloo on CPU, nccl on CUDA) and rank 0 writes. Writes the resolved config, a CSV log,
resumable state and ``DIR/model.safetensors`` + ``model.json``; prints a JSON summary on stdout.
"""

from __future__ import annotations

import argparse
import json
import sys

from perception.train.config import load_train_config


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", default="", help="training YAML (e.g. config/pretrain_dualstream_s.yaml)")
    parser.add_argument("--data", nargs="+", default=[], metavar="PATH",
                        help="video files, image folders or rosbag2 bags (default: data.paths of the config)")
    parser.add_argument("--out", required=True, help="output folder (config, logs, checkpoints, model)")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", dest="overrides",
                        help="config override, e.g. --set optim.steps=200 (repeatable)")
    parser.add_argument("--resume", action="store_true", help="continue from OUT/checkpoints/last")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")


def run(args: argparse.Namespace) -> int:
    from perception.train.distributed import init_distributed, shutdown_distributed  # noqa: PLC0415
    from perception.train.trainer import Trainer, resolve_device  # noqa: PLC0415

    cfg = load_train_config(args.config or None, args.overrides)
    paths = list(args.data) or list(cfg.data.paths)
    info = init_distributed(resolve_device(cfg.run.device).type)
    try:
        trainer = Trainer(cfg, paths, args.out, info)
        summary = trainer.fit(resume=args.resume, progress=not args.no_progress)
    finally:
        shutdown_distributed(info)
    if info.is_main:
        print(json.dumps(summary, indent=2, default=str))
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="dualstream pretrain", description=__doc__.splitlines()[0])
    add_arguments(parser)
    return run(parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
