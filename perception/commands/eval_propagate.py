"""``dualstream eval propagate``: label propagation on DAVIS-2016 (the feature-quality benchmark of EVAL_PROTOCOL.md).

Methods, computed in the same run: ``checkpoint`` (the given encoder checkpoint), ``random_init`` (the same
architecture with random weights, seed 0) and ``rgb`` (the Lab colour baseline). Encoders run ``forward`` on each
padded frame independently (the benchmark baseline); ``--streaming`` carries the encoder state through each sequence
instead. Writes one JSON (atomically) with ``methods.<name>.{J,F,JF}``, ``methods.<name>.per_sequence.<seq>.{J,F,JF}``
(fractions in [0, 1]), the protocol parameters, the resolved arguments and timings.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch

from perception.eval.davis import DavisError, list_sequences
from perception.eval.features import EncoderFeatures, FeatureExtractor, LabColourFeatures, load_encoder_pair
from perception.eval.propagate import PropagationParams, run_benchmark
from perception.eval.segmentation_metrics import BOUNDARY_FRACTION
from perception.io.atomic import write_json

METHODS = ("checkpoint", "random_init", "rgb")
DEFAULT_DAVIS = "../shared/data/davis2016"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--davis", default=DEFAULT_DAVIS, help=f"DAVIS-2016 root (default {DEFAULT_DAVIS})")
    parser.add_argument("--seqs", default="", help="comma-separated sequences (default: all under the root)")
    parser.add_argument("--checkpoint", default="", help="encoder checkpoint (.safetensors with its JSON)")
    parser.add_argument("--json", default="runs/eval_propagate.json", help="output JSON path")
    parser.add_argument("--methods", default="",
                        help="comma-separated subset of checkpoint,random_init,rgb (default: all three with "
                             "--checkpoint, rgb alone without)")
    parser.add_argument("--max-frames", type=int, default=0, help="use only the first N frames of each sequence")
    parser.add_argument("--streaming", action="store_true",
                        help="encode with the streaming state carried through each sequence (default: each frame "
                             "independently with forward)")
    parser.add_argument("--device", default="cpu", help="torch device for the encoders (default cpu)")
    parser.add_argument("--bf16", action="store_true", help="bfloat16 autocast for the encoders")
    parser.add_argument("--seed", type=int, default=0, help="seed of the random_init weights (default 0)")
    parser.add_argument("--readout", choices=("auto", "dense", "local"), default="auto",
                        help="encoder map to propagate with: the fused dense map, the local stream's map, or "
                             "(auto, default) the map the checkpoint declares for correspondence in its JSON "
                             "(`correspondence_readout`; dense when it declares none)")


def _methods(args: argparse.Namespace) -> list[str]:
    if not args.methods:
        return list(METHODS) if args.checkpoint else ["rgb"]
    names = [m.strip() for m in args.methods.split(",") if m.strip()]
    unknown = [m for m in names if m not in METHODS]
    if unknown:
        raise ValueError(f"--methods: unknown {', '.join(unknown)} (known: {', '.join(METHODS)})")
    if not args.checkpoint and any(m != "rgb" for m in names):
        raise ValueError("--methods checkpoint/random_init need --checkpoint; without one use --methods rgb")
    return names


def correspondence_readout(meta: dict) -> str:
    """The encoder map a checkpoint declares for dense correspondence (``correspondence_readout`` in its JSON:
    ``dense`` or ``local``); ``dense`` when it declares none."""
    readout = meta.get("correspondence_readout", "dense")
    if readout not in ("dense", "local"):
        raise ValueError(f"checkpoint JSON: correspondence_readout must be 'dense' or 'local', got {readout!r}")
    return readout


def _extractors(args: argparse.Namespace, names: list[str]) -> tuple[dict[str, FeatureExtractor], dict]:
    extractors: dict[str, FeatureExtractor] = {}
    meta: dict = {}
    if "checkpoint" in names or "random_init" in names:
        model, random_model, meta = load_encoder_pair(args.checkpoint, seed=args.seed, device=args.device)
        encoders = {"checkpoint": model, "random_init": random_model}
        if args.readout == "auto":  # the same map for the checkpoint and its random_init twin
            args.readout = correspondence_readout(meta)
    if args.readout == "auto":
        args.readout = "dense"
    for name in names:
        if name == "rgb":
            extractors[name] = LabColourFeatures()
        else:
            extractors[name] = EncoderFeatures(encoders[name], name=name, streaming=args.streaming,
                                               device=args.device, bf16=args.bf16, readout=args.readout)
    return extractors, meta


def _json_safe(value: object) -> object:
    if isinstance(value, dict):
        return {str(k): _json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_safe(v) for v in value]
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    return str(value)


def run(args: argparse.Namespace) -> int:
    started = time.time()
    try:
        names = _methods(args)
        sequences = [s.strip() for s in args.seqs.split(",") if s.strip()] or list_sequences(args.davis)
        if not sequences:
            raise DavisError(f"no sequences found under {args.davis}")
        extractors, meta = _extractors(args, names)
    except (ValueError, RuntimeError, DavisError, FileNotFoundError) as exc:
        print(f"eval propagate: {exc}", file=sys.stderr)
        return 2
    params = PropagationParams()
    print(f"[eval propagate] methods {', '.join(names)} on {', '.join(sequences)} (root {args.davis})",
          file=sys.stderr)
    try:
        results = run_benchmark(args.davis, sequences, extractors, params, args.max_frames,
                                log=lambda line: print(line, file=sys.stderr, flush=True))
    except DavisError as exc:
        print(f"eval propagate: {exc}", file=sys.stderr)
        return 2
    report = {
        "benchmark": "davis2016_label_propagation",
        "methods": results,
        "sequences": sequences,
        "protocol": {**params.as_dict(), "padding": "edge, bottom/right, to a multiple of the stride",
                     "first_frame_label": "ground truth average-pooled to the grid", "context": "first + previous",
                     "boundary_tolerance": f"ceil({BOUNDARY_FRACTION} * diagonal)",
                     "encoder_mode": "streaming encode with state" if args.streaming else "forward per frame",
                     "encoder_readout": args.readout,
                     "scored_frames": "all but the first"},
        "arguments": {**{k: v for k, v in vars(args).items() if not callable(v)}, "methods": names,
                      "seqs": sequences},
        "checkpoint_meta": _json_safe(meta),
        "timing": {"started_unix": started, "total_seconds": time.time() - started,
                   "torch_threads": torch.get_num_threads()},
    }
    path = write_json(Path(args.json), _json_safe(report))
    summary = ", ".join(f"{n} J&F {results[n]['JF']:.3f}" for n in names)
    print(f"[eval propagate] {summary}; wrote {path}", file=sys.stderr)
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="dualstream eval propagate", description=__doc__.splitlines()[0])
    add_arguments(parser)
    return run(parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
