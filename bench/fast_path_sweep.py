"""The fast path's speed over keyframe schedules: the in-process pipeline at several (global_every, global_scale).

    python bench/fast_path_sweep.py --video ../shared/data/videos/vtest.avi [--frames 80] [--schedules 4:0.5,8:0.5]
        [--set runtime.threads=1] [--json OUT]

For each schedule ``every:scale`` the default pipeline (``perception.bench.pipeline_speed``: decode, preprocess,
encoder, detection, monitor) runs on the same first ``--frames`` frames and reports fps, latency p50/p99, CPU ms
per frame and the load average. The first schedule is the reference: ``ratio`` = fps / its fps, measured in the
same run. Quality for a schedule: ``dualstream bench --only quality --set encoder.global_every=N ...``.
"""

from __future__ import annotations

import argparse
import json
import sys


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--video", required=True)
    parser.add_argument("--frames", type=int, default=80)
    parser.add_argument("--warmup", type=int, default=8)
    parser.add_argument("--schedules", default="4:0.5,8:0.5,4:0.35,2:0.5")
    parser.add_argument("--set", action="append", default=[], dest="overrides", metavar="KEY=VALUE")
    parser.add_argument("--json", default="")
    args = parser.parse_args(argv)

    from perception.bench.measure import machine_info
    from perception.bench.pipeline_speed import measure_pipeline
    from perception.config import load_config
    from perception.runtime.run_config import RunConfig

    rows = []
    for item in args.schedules.split(","):
        every, scale = item.split(":")
        cfg = load_config(None, ["runtime.publish_pca=false", "runtime.publish_debug=false", *args.overrides,
                                 f"source.uri={args.video}", f"encoder.global_every={every}",
                                 f"encoder.global_scale={scale}"], cls=RunConfig)
        r = measure_pipeline(cfg, args.frames, args.warmup)
        rows.append({"global_every": int(every), "global_scale": float(scale), "fps": r["fps"],
                     "latency_ms": {k: r["latency_ms"].get(k) for k in ("p50", "p95", "p99")},
                     "cpu_ms_per_frame": r["cpu_ms_per_frame"], "stage_ms_p50": r["stage_ms_p50"],
                     "load_average": r["load_average"]})
        print(f"every {every} scale {scale}: {r['fps']:.1f} fps, p99 {r['latency_ms'].get('p99')} ms, "
              f"{r['cpu_ms_per_frame']} CPU ms/frame, load {r['load_average']['after']}", file=sys.stderr)
    for row in rows:
        row["ratio"] = round(row["fps"] / rows[0]["fps"], 3) if rows[0]["fps"] else None
    result = {"video": args.video, "frames": args.frames, "machine": machine_info(), "schedules": rows}
    text = json.dumps(result, indent=2)
    if args.json:
        with open(args.json, "w", encoding="utf-8") as fh:
            fh.write(text)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
