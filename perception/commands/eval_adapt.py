"""``dualstream eval adapt``: online adaptation under photometric shifts, against frozen and norm-statistics baselines.

Streams the real videos once in order under each shift (``none,lowlight,lowcontrast,fog,noise,blur``) and scores
``frozen``, ``adapted``, ``adapted_unguarded``, ``norm_stats`` and ``unstable`` (lr x100, which the guard must
catch) on the same run: J&F of DAVIS label propagation (``--task propagate``) or AP50 of the few-shot person head
on a MOT15 sequence (``--task detect``); then inference fps with the adaptation worker on and off. Writes a JSON
with ``shifts.<shift>.<method>``, ``fps.{adaptation_on,adaptation_off}``, ``guard.<method>.rollbacks``, the bars
(``summary``), per-sequence details and the resolved settings.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import time
from pathlib import Path

import torch

DEFAULT_DATA = "../shared/data"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--task", choices=("propagate", "detect"), required=True)
    parser.add_argument("--shifts", default="none,lowlight,lowcontrast,fog,noise,blur",
                        help="comma-separated shifts (perception.eval.shifts)")
    parser.add_argument("--methods", default="frozen,adapted,adapted_unguarded,norm_stats,unstable",
                        help="comma-separated methods (default: all five)")
    parser.add_argument("--json", default="runs/eval_adapt.json", help="output JSON")
    parser.add_argument("--max-frames", type=int, default=0, help="first N frames of each sequence / the video (0: all)")
    parser.add_argument("--seqs", default="car-roundabout,parkour", help="DAVIS sequences (propagate)")
    parser.add_argument("--davis", default=f"{DEFAULT_DATA}/davis2016", help="DAVIS-2016 root (propagate)")
    parser.add_argument("--video", default=f"{DEFAULT_DATA}/videos/vtest.avi", help="video (detect)")
    parser.add_argument("--gt", default=f"{DEFAULT_DATA}/mot15/PETS09-S2L1/gt/gt.txt", help="MOT gt.txt (detect)")
    parser.add_argument("--checkpoint", default="", help="encoder checkpoint (default: the shipped one, else random)")
    parser.add_argument("--encoder", default="dualstream_s", help="encoder name without a checkpoint")
    parser.add_argument("--scale", type=float, default=0.5,
                        help="propagate: frames and the +-12-cell window scaled by this (1.0: EVAL_PROTOCOL's "
                             "full 854x480; 0.5 is about 10x faster on a 2-core CPU)")
    parser.add_argument("--encoder-scale", type=float, default=0.5, help="detect: encoder input scale (0.5)")
    parser.add_argument("--update-every", type=int, default=2, help="one adaptation update every N frames (2)")
    parser.add_argument("--warmup-frames", type=int, default=20,
                        help="unscored frames of the shifted stream each method sees first (0: none)")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", dest="overrides",
                        help="AdaptationConfig override, e.g. lr=1e-4 or params=norm (repeatable)")
    parser.add_argument("--fps-frames", type=int, default=20, help="frames cycled through for fps (0: skip fps)")
    parser.add_argument("--fps-seconds", type=float, default=6.0, help="seconds timed with adaptation on and off each, in three alternating rounds")
    parser.add_argument("--fp32", action="store_true", help="inference in float32 (default: bfloat16 autocast)")
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: library default)")
    parser.add_argument("--readout", choices=("auto", "dense", "local"), default="auto",
                        help="propagate: the encoder map read for correspondence; auto: the one the checkpoint "
                             "declares (`correspondence_readout`, as `eval propagate` reads it; dense when none)")


def adaptation_config(overrides: list[str]):
    from perception.adaptation import AdaptationConfig  # noqa: PLC0415
    from perception.config import load_config  # noqa: PLC0415

    return load_config({"enabled": True}, overrides, cls=AdaptationConfig)


def run(args: argparse.Namespace) -> int:
    from perception.config import EncoderConfig  # noqa: PLC0415
    from perception.eval.adapt import (METHODS, AdaptSettings, measure_fps, merge_guard,  # noqa: PLC0415
                                       summarise)
    from perception.eval.adapt_tasks import run_detect, run_propagate  # noqa: PLC0415
    from perception.eval.shifts import parse_shifts  # noqa: PLC0415
    from perception.io.atomic import write_json  # noqa: PLC0415
    from perception.commands.eval_propagate import correspondence_readout  # noqa: PLC0415
    from perception.models.checkpoint import file_sha256, read_checkpoint_meta  # noqa: PLC0415
    from perception.runtime.model_loading import load_encoder  # noqa: PLC0415

    started = time.time()
    log = lambda line: print(line, file=sys.stderr, flush=True)  # noqa: E731
    if args.threads > 0:
        torch.set_num_threads(args.threads)
    try:
        shifts = parse_shifts(args.shifts)
        methods = [m.strip() for m in args.methods.split(",") if m.strip()]
        unknown = [m for m in methods if m not in METHODS]
        if unknown or not methods:
            raise ValueError(f"--methods: unknown {', '.join(unknown) or '(none)'} (known: {', '.join(METHODS)})")
        if args.update_every < 1 or not 0 < args.scale <= 1 or args.max_frames < 0:
            raise ValueError("--update-every must be >= 1, --scale in (0, 1], --max-frames >= 0")
    except ValueError as exc:
        print(f"eval adapt: {exc}", file=sys.stderr)
        return 2
    settings = AdaptSettings(cfg=adaptation_config(args.overrides), update_every=args.update_every,
                             bf16=not args.fp32)
    loaded = load_encoder(EncoderConfig(name=args.encoder, checkpoint=args.checkpoint))
    source = loaded.model
    if args.readout == "auto":
        args.readout = correspondence_readout(read_checkpoint_meta(loaded.path)) if loaded.path else "dense"
    encoder = {"name": args.encoder, "source": loaded.source, "checkpoint": loaded.path,
               "sha256": file_sha256(loaded.path) if loaded.path else None, "readout": args.readout}
    log(f"[eval adapt] task {args.task}, shifts {','.join(shifts)}, methods {','.join(methods)}; encoder "
        f"{encoder['name']} ({encoder['source']} {encoder['checkpoint']})")
    if args.task == "propagate":
        seqs = [s.strip() for s in args.seqs.split(",") if s.strip()]
        scores, details, per_shift = run_propagate(args.davis, seqs, source, shifts, methods, settings,
                                                   args.max_frames, args.scale, log, args.warmup_frames,
                                                   args.readout)
        from perception.eval.davis import load_sequence  # noqa: PLC0415
        from perception.eval.adapt_tasks import scaled_sequence  # noqa: PLC0415
        fps_source = list(scaled_sequence(load_sequence(args.davis, seqs[0], args.fps_frames or 1), args.scale).frames)
        metric = "J&F"
    else:
        from perception.commands.fewshot_fit import fit_from_video  # noqa: PLC0415
        from perception.eval.adapt_tasks import encoder_input  # noqa: PLC0415
        from perception.eval.detect import read_video  # noqa: PLC0415

        head = fit_from_video(args.video, args.gt, 5, True, args.encoder, args.checkpoint,
                              encoder_scale=args.encoder_scale)
        scores, details, per_shift = run_detect(args.video, args.gt, source, head, shifts, methods, settings,
                                                args.max_frames, args.encoder_scale, log, args.warmup_frames)
        fps_source = [encoder_input(f, args.encoder_scale)[0].permute(1, 2, 0).mul(255).byte().numpy()
                      for f in read_video(args.video, args.fps_frames or 1)]
        metric = "AP50"
    fps = measure_fps(source, fps_source, settings, args.fps_seconds, log) if args.fps_frames > 0 else None
    guard = merge_guard(per_shift)
    complete = set(METHODS) <= set(methods)
    report = {
        "benchmark": "online_adaptation", "task": args.task, "metric": metric,
        "shifts": {s: {m: round(v, 4) for m, v in row.items()} for s, row in scores.items()},
        "fps": fps, "guard": guard, "guard_per_shift": per_shift,
        "summary": summarise(scores, guard, fps) if complete else None,
        "details": details, "encoder": encoder,
        "adaptation": dataclasses.asdict(settings.cfg) | {"update_every": settings.update_every,
                                                          "unstable_lr_factor": settings.unstable_lr_factor},
        "arguments": {k: v for k, v in vars(args).items() if not callable(v)},
        "torch_threads": torch.get_num_threads(), "seconds": round(time.time() - started, 1),
    }
    path = write_json(Path(args.json), report)
    for shift, row in report["shifts"].items():
        log(f"[eval adapt] {metric} {shift:>11s}: " + "  ".join(f"{m} {v:.3f}" for m, v in row.items()))
    if fps:
        log(f"[eval adapt] fps: adaptation on {fps['adaptation_on']:.2f}, off {fps['adaptation_off']:.2f} "
            f"(ratio {fps['ratio']:.2f})")
    if report["summary"]:
        log(f"[eval adapt] summary: {report['summary']}")
    log(f"[eval adapt] wrote {path} ({report['seconds']:.0f} s)")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="dualstream eval adapt", description=__doc__.splitlines()[0])
    add_arguments(parser)
    return run(parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
