"""Export the encoder for other runtimes: ONNX (keyframe and step graphs), verified with onnxruntime.

``dualstream export --format onnx --out models/onnx/dualstream_s.onnx [--checkpoint C] [--width 640 --height 480]``
loads the encoder as ``dualstream run`` does (``encoder.*`` from ``--config``/``--set``; the shipped checkpoint by
default), writes ``<out>`` (keyframe graph), ``<stem>_step.onnx`` (frames between keyframes) and ``<stem>.json``
(sizes, state names, schedule; see ``perception.models.export``), then runs both graphs with onnxruntime on the CPU
and compares them with PyTorch in fp32: the largest absolute difference per output goes into the JSON under
``verification`` and the command fails (exit 1) when one is at or above ``--tolerance`` (1e-3).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--format", default="onnx", choices=("onnx",), help="export format (onnx)")
    parser.add_argument("--out", default="runs/export/encoder.onnx", metavar="PATH", help="keyframe graph path")
    parser.add_argument("--config", default=None, metavar="CFG", help="YAML config file (defaults otherwise)")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", dest="overrides",
                        help="config override, e.g. encoder.name=dualstream_tiny (repeatable)")
    parser.add_argument("--checkpoint", default="", metavar="C", help="safetensors checkpoint (default: the config's)")
    parser.add_argument("--width", type=int, default=640, help="frame width of the graphs (multiple of 8)")
    parser.add_argument("--height", type=int, default=480, help="frame height of the graphs (multiple of 8)")
    parser.add_argument("--batch", type=int, default=1, help="cameras per call (batch size of the graphs)")
    parser.add_argument("--opset", type=int, default=18, help="ONNX opset (default 18)")
    parser.add_argument("--tolerance", type=float, default=1e-3, help="largest allowed |onnxruntime - torch|")
    parser.add_argument("--no-verify", action="store_true", help="skip the onnxruntime comparison")


def run(args: argparse.Namespace) -> int:
    from perception.config import load_config  # noqa: PLC0415
    from perception.models.export import export_onnx, verify_onnx  # noqa: PLC0415
    from perception.runtime.model_loading import load_encoder  # noqa: PLC0415
    from perception.runtime.run_config import RunConfig  # noqa: PLC0415

    overrides = list(args.overrides) + ([f"encoder.checkpoint={args.checkpoint}"] if args.checkpoint else [])
    cfg = load_config(args.config, overrides, cls=RunConfig)
    loaded = load_encoder(cfg.encoder, "cpu")
    meta = {"encoder": cfg.encoder.name, "weights": loaded.source, "checkpoint": str(loaded.path or "")}
    info = export_onnx(loaded.model, args.out, args.width, args.height, args.batch, args.opset, meta)
    out = Path(args.out)
    status = 0
    if not args.no_verify:
        diffs = verify_onnx(loaded.model, out)
        worst = max(diffs.values())
        info["verification"] = {"runtime": "onnxruntime CPUExecutionProvider", "max_abs_diff": diffs,
                                "worst": worst, "tolerance": args.tolerance, "passed": worst < args.tolerance}
        out.with_suffix(".json").write_text(json.dumps(info, indent=2))
        status = 0 if worst < args.tolerance else 1
        print(f"dualstream export: onnxruntime vs torch max |diff| {worst:.2e} "
              f"({'under' if status == 0 else 'NOT under'} {args.tolerance:g})")
    print(f"dualstream export: {out} and {out.with_name(info['step_graph'])} ({args.width}x{args.height}, "
          f"batch {args.batch}, {cfg.encoder.name} {loaded.source}); {out.with_suffix('.json')}")
    return status
