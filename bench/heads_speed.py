"""Speed of the per-frame stages after the encoder: the detector and the stream monitor, on real encoder features.

    python bench/heads_speed.py --video ../shared/data/videos/vtest.avi [--frames 200] [--skip 10] [--json OUT]

The default pipeline's ``Perceiver`` (shipped checkpoint, default config) runs once over the first ``--frames``
frames to record what the heads get: the resized RGB image and the (C, h, w) dense features the detector sees, and
the global embedding the monitor sees. Then, with the encoder out of the way, a fresh detector (``detector.method``)
and a fresh ``StreamMonitor`` run over the recorded frames in order, inside ``single_threaded_blas()`` as in
``Perceiver.heads``, and the per-frame process CPU time and wall time are reported as medians over the frames after
the first ``--skip`` (the detector's first frames take other paths). Process CPU time includes OpenCV's worker
threads: it is what the stage costs the machine whatever the load; wall time depends on the load (reported).
``OMP_WAIT_POLICY`` defaults to ``PASSIVE`` here (as for ``dualstream bench``), so that torch's OpenMP threads do
not spin and add to the process CPU time counted for the heads (on a machine at load 10, runs with ACTIVE gave
8.2 and 9.4 ms of detection CPU a frame on vtest, with PASSIVE 5.9 and 10.1: the load hides the difference).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # before torch is imported (see the module docstring)


def _median_ms(values: list[float]) -> float:
    import numpy as np  # noqa: PLC0415

    return round(float(np.median(values)) * 1000.0, 3)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--video", required=True)
    parser.add_argument("--frames", type=int, default=200)
    parser.add_argument("--skip", type=int, default=10)
    parser.add_argument("--set", action="append", default=[], dest="overrides", metavar="KEY=VALUE")
    parser.add_argument("--json", default="")
    args = parser.parse_args(argv)
    if args.frames <= args.skip:
        parser.error(f"--frames ({args.frames}) must exceed --skip ({args.skip})")

    import numpy as np  # noqa: PLC0415
    import torch  # noqa: PLC0415

    from perception.bench.measure import load_average  # noqa: PLC0415
    from perception.config import load_config  # noqa: PLC0415
    from perception.detection.detector import build_detector  # noqa: PLC0415
    from perception.io.factory import open_source  # noqa: PLC0415
    from perception.monitor import StreamMonitor  # noqa: PLC0415
    from perception.monitor.config import MonitorConfig  # noqa: PLC0415
    from perception.runtime.blas import single_threaded_blas  # noqa: PLC0415
    from perception.runtime.perceiver import Perceiver  # noqa: PLC0415
    from perception.runtime.run_config import RunConfig  # noqa: PLC0415

    cfg = load_config(None, ["runtime.publish_pca=false", "runtime.publish_debug=false", *args.overrides,
                             f"source.uri={args.video}"], cls=RunConfig)
    perceiver = Perceiver(cfg)
    recorded: list[tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]] = []
    source = open_source(cfg.source)
    try:
        for index, frame in enumerate(source):
            if index >= args.frames:
                break
            pre = perceiver.preprocess(frame.image)
            result = perceiver.process(frame)
            recorded.append((pre.image, result.features, frame.image, result.global_embedding))
    finally:
        source.close()
    if len(recorded) <= args.skip:
        print(f"heads_speed: {args.video} gave {len(recorded)} frames, need more than --skip {args.skip}",
              file=sys.stderr)
        return 1

    detector = build_detector(cfg.detector)
    monitor = StreamMonitor(MonitorConfig())
    times: dict[str, list[float]] = {"detection_cpu": [], "detection_wall": [], "monitor_cpu": [], "monitor_wall": []}
    detections = 0
    load_before = load_average()
    with single_threaded_blas():
        for image, features, full_image, embedding in recorded:
            dense = torch.from_numpy(features).permute(2, 0, 1)  # as Perceiver.heads passes it
            wall, cpu = time.perf_counter(), time.process_time()
            found = detector.detect(image, dense)
            times["detection_wall"].append(time.perf_counter() - wall)
            times["detection_cpu"].append(time.process_time() - cpu)
            detections += len(found)
            wall, cpu = time.perf_counter(), time.process_time()
            monitor.update(full_image, embedding)
            times["monitor_wall"].append(time.perf_counter() - wall)
            times["monitor_cpu"].append(time.process_time() - cpu)
    report = {
        "video": args.video, "frames": len(recorded), "timed_frames": len(recorded) - args.skip,
        "image": list(recorded[0][0].shape), "features_hwc": list(recorded[0][1].shape),
        "detector": cfg.detector.method, "detections": detections,
        "median_ms": {key: _median_ms(values[args.skip:]) for key, values in times.items()},
        "load_average": {"before": load_before, "after": load_average()},
        "omp_wait_policy": os.environ.get("OMP_WAIT_POLICY"),
        "command": " ".join(["python", "bench/heads_speed.py", *(argv if argv is not None else sys.argv[1:])]),
    }
    text = json.dumps(report, indent=1)
    print(text)
    if args.json:
        with open(args.json, "w", encoding="utf-8") as handle:
            handle.write(text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
