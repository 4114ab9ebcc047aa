"""``dualstream fewshot fit``: learn a class head on frozen encoder features from the boxes of the first N frames.

Labels: a MOTChallenge ``gt.txt`` (``conf == 1`` rows are boxes, ``conf == 0`` rows ignore regions; gt frame
``k`` is decoded frame ``k - 1``) or a COCO JSON (``images`` in frame order, or with a ``frame_index``; every
annotation's ``bbox`` of the chosen category, ``iscrowd`` ones as ignore regions). Writes ``HEAD.safetensors`` and
``HEAD.json`` (use it with ``detector.method: fewshot`` and ``detector.fewshot_head: HEAD``).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

from perception.detection.fewshot import save_head
from perception.detection.fewshot_fit import fit_head, labels_digest
from perception.eval.detect import StreamingFeatures, read_video
from perception.eval.mot import load_mot_gt


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--video", required=True, help="video file the labels belong to")
    parser.add_argument("--labels", required=True, help="MOT gt.txt or COCO JSON with boxes of the first frames")
    parser.add_argument("--frames", type=int, default=5, help="learn from the first N frames (default 5)")
    parser.add_argument("--out", required=True, help="head path (HEAD -> HEAD.safetensors + HEAD.json)")
    parser.add_argument("--class-name", default="person", help="class name stored in the head (default person)")
    parser.add_argument("--category", default="", help="COCO category name to learn (default: all boxes)")
    parser.add_argument("--encoder", default="dualstream_s", help="encoder name (default dualstream_s)")
    parser.add_argument("--checkpoint", default="",
                        help="encoder checkpoint (default: models/<encoder>.safetensors if shipped, else random)")
    parser.add_argument("--no-encoder", action="store_true", help="colour and foreground only (no encoder features)")
    parser.add_argument("--encoder-scale", type=float, default=1.0,
                        help="encode frames at this scale of their size (0.5 on a small CPU; default 1)")
    parser.add_argument("--seed", type=int, default=0)


def labels_for_frames(path: str | Path, frames: int, category: str = "") -> tuple[list[np.ndarray], list[np.ndarray]]:
    """``(boxes, ignore)`` per decoded frame ``0..frames-1`` from a MOT gt.txt or a COCO JSON."""
    path = Path(path)
    if path.suffix.lower() == ".json":
        data = json.loads(path.read_text())
        images = sorted(data.get("images", []), key=lambda im: (im.get("frame_index", im["id"]), im["id"]))
        index = {im["id"]: int(im.get("frame_index", k)) for k, im in enumerate(images)}
        wanted = {c["id"] for c in data.get("categories", []) if not category or c["name"] == category}
        boxes = [[] for _ in range(frames)]
        ignore = [[] for _ in range(frames)]
        for ann in data.get("annotations", []):
            k = index.get(ann["image_id"], -1)
            if 0 <= k < frames and ann.get("category_id") in wanted:
                (ignore if ann.get("iscrowd") else boxes)[k].append(ann["bbox"])
        return ([np.asarray(b, np.float64).reshape(-1, 4) for b in boxes],
                [np.asarray(g, np.float64).reshape(-1, 4) for g in ignore])
    truth = load_mot_gt(path)
    empty = np.zeros((0, 4))
    return ([truth[k + 1].boxes if k + 1 in truth else empty for k in range(frames)],
            [truth[k + 1].ignore if k + 1 in truth else empty for k in range(frames)])


def load_features(encoder: str, checkpoint: str, scale: float = 1.0) -> tuple[StreamingFeatures, dict]:
    """The encoder (a checkpoint, the shipped default or random weights) and what to record about it."""
    from perception.config import EncoderConfig  # noqa: PLC0415
    from perception.models.checkpoint import file_sha256  # noqa: PLC0415
    from perception.runtime.model_loading import load_encoder  # noqa: PLC0415

    loaded = load_encoder(EncoderConfig(name=encoder, checkpoint=checkpoint))
    info = {"name": getattr(loaded.model, "encoder_name", encoder), "source": loaded.source, "checkpoint": loaded.path,
            "sha256": file_sha256(loaded.path) if loaded.path else None, "input_scale": scale}
    return StreamingFeatures(loaded.model, scale), info


def fit_from_video(video: str, labels: str, frames: int, use_encoder: bool = True, encoder: str = "dualstream_s",
                   checkpoint: str = "", class_name: str = "person", category: str = "", seed: int = 0,
                   encoder_scale: float = 1.0):
    """Decode the first ``frames`` frames, encode them (streaming, from a fresh state) and fit a head."""
    images = list(read_video(video, frames))
    if len(images) < frames:
        raise ValueError(f"{video}: only {len(images)} frames, --frames {frames}")
    boxes, ignore = labels_for_frames(labels, frames, category)
    if sum(len(b) for b in boxes) < 2:
        raise ValueError(f"{labels}: fewer than 2 boxes in the first {frames} frames")
    dense, info, encode = None, {"name": None}, None
    if use_encoder:
        features, info = load_features(encoder, checkpoint, encoder_scale)
        dense = [features(im) for im in images]

        def encode(image: np.ndarray) -> object:  # a synthetic frame: no stream before it
            features.reset()
            return features(image)
    head = fit_head(images, boxes, ignore, dense, info, class_name, seed, encode=encode)
    head.meta["labels"] = {"file": str(labels), "frames": frames, "digest": labels_digest(boxes)}
    head.meta["video"] = str(video)
    return head


def run(args: argparse.Namespace) -> int:
    started = time.time()
    try:
        head = fit_from_video(args.video, args.labels, args.frames, not args.no_encoder, args.encoder,
                              args.checkpoint, args.class_name, args.category, args.seed,
                              args.encoder_scale)
    except (ValueError, FileNotFoundError) as exc:
        print(f"fewshot fit: {exc}", file=sys.stderr)
        return 2
    path = save_head(head, args.out)
    fit = head.meta["fit"]
    print(f"[fewshot fit] {fit['boxes']} boxes on {fit['frames']} frames, encoder {head.meta['encoder'].get('name')} "
          f"({head.meta['encoder'].get('source', 'none')}); wrote {path} in {time.time() - started:.1f} s",
          file=sys.stderr)
    return 0
