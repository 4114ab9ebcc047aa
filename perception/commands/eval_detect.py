"""``dualstream eval detect``: person detection and tracking on a MOT15 sequence, ours against HOG and MOG2.

Follows EVAL_PROTOCOL.md ("Detection on MOT15 sequences"). Methods in one run: ``fewshot`` (a head fitted on the
first ``--fewshot-frames`` frames' labels, or ``--head``), ``discovery`` (class-agnostic), ``hog`` and ``mog2``.
Writes a JSON with ``methods.<name>.{precision, recall, ap50, fp_per_frame, fp_per_frame_at_hog_recall, mota,
idf1, ...}``, ``frames_evaluated``, the resolved arguments and timings, plus a PNG beside it (``--picture``).
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import time
from pathlib import Path

import torch

from perception.commands.fewshot_fit import fit_from_video, load_features
from perception.config import DetectorConfig
from perception.detection.detector import DiscoveryDetector
from perception.detection.fewshot import load_head, save_head
from perception.detection.fewshot_detector import FewShotDetector
from perception.eval.detect import (METHODS, evaluate, hog_params_for, load_truth, read_video, run_methods,
                                    scored_frames, video_length)
from perception.eval.detect_report import detection_picture, write_png
from perception.io.atomic import write_json

PICTURE_FRAMES = 3
EVAL_MIN_SCORE = 0.02  # ours report every window above this; the metrics sweep the threshold


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--video", required=True, help="the sequence's video (vtest.avi is PETS09-S2L1)")
    parser.add_argument("--gt", required=True, help="MOTChallenge gt.txt of the video")
    parser.add_argument("--fewshot-frames", type=int, default=5, help="labelled frames for the few-shot head (5)")
    parser.add_argument("--json", default="runs/eval_detect.json", help="output JSON (the PNG goes beside it)")
    parser.add_argument("--picture", default="", help="PNG path (default: the JSON path with .png)")
    parser.add_argument("--checkpoint", default="", help="encoder checkpoint (default: the shipped one, else random)")
    parser.add_argument("--encoder", default="dualstream_s", help="encoder name when no checkpoint (dualstream_s)")
    parser.add_argument("--encoder-scale", type=float, default=0.5,
                        help="encode frames at this scale of their size (default 0.5: a 768x576 frame gives a "
                             "48x36 grid; 1.0 costs about 4x on a 2-core CPU)")
    parser.add_argument("--no-encoder", action="store_true", help="ours without encoder features (colour only)")
    parser.add_argument("--head", default="", help="use this few-shot head instead of fitting one")
    parser.add_argument("--methods", default=",".join(METHODS), help=f"subset of {','.join(METHODS)}")
    parser.add_argument("--max-frames", type=int, default=0, help="only the first M frames (0: all)")
    parser.add_argument("--hog-scale", type=float, default=None, help="HOG upscale (protocol: 2.0 PETS, 1.0 TUD)")
    parser.add_argument("--cache", default=".cache", help="folder for cached HOG detections (.cache)")
    parser.add_argument("--threads", type=int, default=0, help="torch/OpenCV threads (0: library default)")


def _methods(text: str) -> list[str]:
    names = [m.strip() for m in text.split(",") if m.strip()]
    unknown = [m for m in names if m not in METHODS]
    if unknown or not names:
        raise ValueError(f"--methods: unknown {', '.join(unknown) or '(none)'} (known: {', '.join(METHODS)})")
    return names


def run(args: argparse.Namespace) -> int:
    started = time.time()
    log = lambda line: print(line, file=sys.stderr, flush=True)  # noqa: E731
    if args.threads > 0:
        torch.set_num_threads(args.threads)
    try:
        methods = _methods(args.methods)
        truth = load_truth(args.gt)
        n_frames = video_length(args.video)
        if args.max_frames:
            n_frames = min(n_frames, args.max_frames)
        if n_frames <= 5:
            raise ValueError(f"{args.video}: {n_frames} frames; at least 6 are needed (frames 1-5 are not scored)")
    except (ValueError, FileNotFoundError) as exc:
        print(f"eval detect: {exc}", file=sys.stderr)
        return 2
    cfg = DetectorConfig()
    timings: dict[str, float] = {}
    features, encoder_info, detectors, head_path = None, {"name": None}, {}, ""
    use_encoder = not args.no_encoder and any(m in methods for m in ("fewshot", "discovery"))
    if use_encoder:
        features, encoder_info = load_features(args.encoder, args.checkpoint, args.encoder_scale)
        log(f"[eval detect] encoder {encoder_info['name']} ({encoder_info['source']} {encoder_info['checkpoint']})")
    if "fewshot" in methods:
        t = time.time()
        if args.head:
            head = load_head(args.head)
            head_path = args.head
        else:
            head = fit_from_video(args.video, args.gt, args.fewshot_frames, use_encoder, args.encoder,
                                  args.checkpoint, encoder_scale=args.encoder_scale)
            head_path = str(save_head(head, Path(args.json).with_suffix("").as_posix() + "_head"))
        timings["fewshot_fit_s"] = round(time.time() - t, 2)
        log(f"[eval detect] few-shot head {head_path} ({timings['fewshot_fit_s']} s)")
        detectors["fewshot"] = FewShotDetector(cfg, head, min_score=EVAL_MIN_SCORE)
    if "discovery" in methods:
        detectors["discovery"] = DiscoveryDetector(dataclasses.replace(cfg, score_threshold=cfg.score_threshold))
    t = time.time()
    runs = run_methods(args.video, methods, n_frames, features, detectors, hog_params_for(args.video, args.hog_scale),
                       args.cache, log)
    timings["run_s"] = round(time.time() - t, 2)
    frames = scored_frames(truth, n_frames, max(5, args.fewshot_frames))
    t = time.time()
    results = evaluate(runs, truth, frames, cfg)
    timings["evaluate_s"] = round(time.time() - t, 2)
    picture = Path(args.picture or Path(args.json).with_suffix(".png"))
    pick = [frames[int(i * (len(frames) - 1) / max(PICTURE_FRAMES - 1, 1))] for i in range(PICTURE_FRAMES)]
    images = {i + 1: im for i, im in enumerate(read_video(args.video, max(pick))) if i + 1 in pick}
    write_png(picture, detection_picture(images, truth, {m: runs[m].detections for m in methods},
                                         {m: results[m]["threshold"] for m in methods}))
    timings["total_s"] = round(time.time() - started, 2)
    report = {
        "benchmark": "mot15_detection",
        "video": args.video, "gt": args.gt,
        "frames_run": n_frames, "frames_evaluated": len(frames), "scored_gt_frames": [frames[0], frames[-1]],
        "valid_boxes_evaluated": int(sum(len(truth[f].boxes) for f in frames if f in truth)),
        "methods": results,
        "encoder": encoder_info, "fewshot_head": head_path,
        "encoder_ms_per_frame": round(1000 * runs["encoder"].seconds / n_frames, 1) if "encoder" in runs else None,
        "hog_params": dataclasses.asdict(hog_params_for(args.video, args.hog_scale)),
        "arguments": {k: v for k, v in vars(args).items() if not callable(v)},
        "picture": str(picture), "timings": timings, "torch_threads": torch.get_num_threads(),
    }
    path = write_json(Path(args.json), report)
    for name, m in results.items():
        at_hog = m["fp_per_frame_at_hog_recall"]
        log(f"[eval detect] {name:9s} P {m['precision']:.3f} R {m['recall']:.3f} AP50 {m['ap50']:.3f} "
            f"FP/frame {m['fp_per_frame']:.2f} at-hog-recall {'-' if at_hog is None else f'{at_hog:.2f}'} "
            f"MOTA {m['mota']:.3f} IDF1 {m['idf1']:.3f} ({m['ms_per_frame']} ms/frame)")
    log(f"[eval detect] wrote {path} and {picture}")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="dualstream eval detect", description=__doc__.splitlines()[0])
    add_arguments(parser)
    return run(parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
