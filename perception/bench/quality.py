"""What the fast path costs: the default config against the same model running its global stream on every frame.

Two settings of one checkpoint: ``fast`` (the config's encoder schedule, by default keyframes every 16 frames at
scale 0.375, each run staged over the 16 frames, fusion queries pooled 2x2, temporal state carrying context
between keyframes) and
``every_frame`` (``global_every = 1``, ``global_scale = 1.0``, ``global_stages = 1``, ``fusion_query_pool = 1``: the
global stream on every frame at full resolution and every feature cell querying it, the model as trained).

- PETS AP50 (``pets_ap50``): the whole default pipeline (``Perceiver``: preprocess to the encoder input, encoder,
  discovery detector and tracker) on the first ``max_frames`` frames of PETS09-S2L1 (``vtest.avi`` is that
  sequence), scored with ``dualstream eval detect``'s functions (EVAL_PROTOCOL: gt frames 1..5 unscored, ignore
  regions, all-point AP at IoU 0.5).
- DAVIS J&F (``davis_jf``): label propagation with the streaming encoder's dense map (EVAL_PROTOCOL, ``dualstream
  eval propagate``) on the first ``max_frames`` frames of each sequence. The propagation costs about 2 s a frame on
  the 2-core CPU, so a slice is what a benchmark run can afford; the slice is reported with the numbers.
"""

from __future__ import annotations

import dataclasses
import logging
from typing import Any, Callable, Sequence

log = logging.getLogger(__name__)

SETTINGS = ("fast", "every_frame")


def schedule_configs(cfg: Any) -> dict[str, Any]:
    """``{"fast": cfg, "every_frame": cfg with the global stream on every frame at full resolution}``."""
    every = dataclasses.replace(cfg, encoder=dataclasses.replace(cfg.encoder, global_every=1, global_scale=1.0,
                                                                 global_stages=1, global_start_scale=0.0,
                                                                 fusion_query_pool=1))
    return {"fast": cfg, "every_frame": every}


def pets_ap50(cfg: Any, video: str, gt: str, max_frames: int) -> dict:
    """AP50 (and P/R at the operating point) of the default pipeline with ``cfg``'s encoder schedule."""
    from perception.eval.detect import MethodRun, evaluate, load_truth, scored_frames  # noqa: PLC0415
    from perception.bench.measure import read_rgb_frames  # noqa: PLC0415
    from perception.io.frame import Frame  # noqa: PLC0415
    from perception.runtime.perceiver import Perceiver  # noqa: PLC0415

    import numpy as np  # noqa: PLC0415

    truth = load_truth(gt)
    perceiver = Perceiver(cfg)
    run = MethodRun()
    n = 0
    for index, image in enumerate(read_rgb_frames(video, max_frames)):
        result = perceiver.process(Frame(image=image, stamp_ns=index, seq=index))
        boxes = np.asarray(result.detections.boxes, np.float64).reshape(-1, 4)
        run.detections[index + 1] = (boxes, np.asarray(result.detections.scores, np.float64).reshape(-1))
        n = index + 1
    frames = scored_frames(truth, n)
    if not frames:
        raise ValueError(f"bench quality: {n} frames of {video} leave no scored frame (need more than 5)")
    summary = evaluate({"method": run}, truth, frames, cfg.detector)["method"]
    return {"ap50": round(summary["ap50"], 4), "precision": round(summary["precision"], 4),
            "recall": round(summary["recall"], 4), "frames": n, "scored_frames": len(frames)}


def davis_jf(cfg: Any, root: str, sequences: Sequence[str], max_frames: int) -> dict:
    """Mean J&F over ``sequences`` of label propagation with the streaming encoder under ``cfg``'s schedule."""
    from perception.eval.features import EncoderFeatures  # noqa: PLC0415
    from perception.eval.propagate import run_benchmark  # noqa: PLC0415
    from perception.runtime.device import resolve_device, resolve_precision  # noqa: PLC0415
    from perception.runtime.model_loading import load_encoder  # noqa: PLC0415

    device = resolve_device(cfg.runtime.device)
    bf16 = resolve_precision(cfg.runtime.precision, device) == "bf16"
    model = load_encoder(cfg.encoder, device).model
    extractor = EncoderFeatures(model, "encoder", streaming=True, device=str(device), bf16=bf16)
    result = run_benchmark(root, list(sequences), {"encoder": extractor}, max_frames=max_frames,
                           log=lambda line: log.info("%s", line))["encoder"]
    return {"jf": round(result["JF"], 4), "j": round(result["J"], 4), "f": round(result["F"], 4),
            "per_sequence": {name: round(s["JF"], 4) for name, s in result["per_sequence"].items()}}


def measure_quality(cfg: Any, max_frames: int, pets: tuple[str, str] | None = None, davis_root: str | None = None,
                    davis_sequences: Sequence[str] = ("car-roundabout", "parkour"),
                    progress: Callable[[str], None] = log.info) -> dict:
    """``{fast: {davis_jf, pets_ap50}, every_frame: {...}, cost: {davis_jf, pets_ap50}, ...}``; a metric whose data
    is missing is ``None`` (and says why under ``skipped``). ``cost`` = every_frame - fast (positive: the fast path
    is worse)."""
    configs = schedule_configs(cfg)
    out: dict[str, Any] = {name: {"davis_jf": None, "pets_ap50": None} for name in SETTINGS}
    details: dict[str, dict] = {name: {} for name in SETTINGS}
    skipped: list[str] = []
    for name, setting in configs.items():
        if pets is not None:
            progress(f"quality: PETS09-S2L1 AP50, {name}, {max_frames} frames")
            details[name]["pets"] = pets_ap50(setting, pets[0], pets[1], max_frames)
            out[name]["pets_ap50"] = details[name]["pets"]["ap50"]
        if davis_root is not None:
            progress(f"quality: DAVIS J&F, {name}, {max_frames} frames of {', '.join(davis_sequences)}")
            details[name]["davis"] = davis_jf(setting, davis_root, davis_sequences, max_frames)
            out[name]["davis_jf"] = details[name]["davis"]["jf"]
    if pets is None:
        skipped.append("pets_ap50: no PETS09-S2L1 video and ground truth")
    if davis_root is None:
        skipped.append("davis_jf: no DAVIS-2016 folder")
    cost = {}
    for metric in ("davis_jf", "pets_ap50"):
        fast, full = out["fast"][metric], out["every_frame"][metric]
        cost[metric] = None if fast is None or full is None else round(full - fast, 4)
    out.update(cost=cost, max_frames=max_frames, davis_sequences=list(davis_sequences), details=details,
               skipped=skipped,
               settings={name: {key: getattr(c.encoder, key) for key in
                                ("global_every", "global_scale", "global_stages", "global_start_scale",
                                 "fusion_query_pool")}
                         for name, c in configs.items()})
    return out
