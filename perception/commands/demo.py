"""Run the real ROS 2 graph (camera, perception, recorder processes) on the embedded clip and summarise it.

camera_node (the clip, paced) -> perception_node (encoder + detector) -> recorder_node (MCAP bag of the outputs,
latency from input stamp to receipt). Afterwards the debug overlay is read back from the bag into ``overlay.mp4`` and
``summary.json`` gathers the counts. Exits 1 when a stage produced nothing.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import time
from pathlib import Path

from perception.io.atomic import write_json
from perception.io.embedded import default_demo_clip
from perception.runtime.processes import ManagedProcess, graph_environment, node_command
from perception.io.stats_files import read_json

PKG = "dualstream_perception"
OUTPUT_TOPICS = {
    "/camera/detections": "vision_msgs/msg/Detection2DArray",
    "/camera/features": "sensor_msgs/msg/Image",
    "/camera/features/pca": "sensor_msgs/msg/Image",
    "/camera/debug/image": "sensor_msgs/msg/Image",
    "/diagnostics": "diagnostic_msgs/msg/DiagnosticArray",
}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", default="runs/demo", help="output folder (default runs/demo; replaced)")
    parser.add_argument("--source", default="", help="frame source URI (default: the embedded clip, else synthetic)")
    parser.add_argument("--rate", type=float, default=10.0, help="camera publishing rate in Hz (default 10)")
    parser.add_argument("--max-frames", type=int, default=0, help="stop the camera after N frames (0: whole clip)")
    parser.add_argument("--checkpoint", default="", help="encoder checkpoint (default: the shipped one)")
    parser.add_argument("--domain-id", type=int, default=None, help="ROS_DOMAIN_ID for the graph")
    parser.add_argument("--timeout", type=float, default=600.0, help="give up after this many seconds")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="a perception_node parameter, e.g. encoder.name=dualstream_tiny (repeatable)")
    parser.add_argument("--quiet", action="store_true", help="do not echo the nodes' output")


def _source(args: argparse.Namespace) -> str:
    if args.source:
        return args.source
    clip = default_demo_clip()
    return str(clip) if clip else "synthetic"


def _processes(args: argparse.Namespace, out: Path, source: str) -> list[ManagedProcess]:
    extra = {"ROS_DOMAIN_ID": str(args.domain_id)} if args.domain_id is not None else {}
    env = graph_environment(extra)
    echo = None if args.quiet else sys.stderr
    recorder = node_command(f"{PKG}.recorder_node", "demo_recorder", params={
        "topics": list(OUTPUT_TOPICS), "types": list(OUTPUT_TOPICS.values()), "output": str(out / "bag"),
        "storage": "mcap", "stats_path": str(out / "recorder_stats.json"), "reliability": "reliable",
        "ready_path": str(out / "recorder_ready.json"),
    })
    # Reliable with a history of 2 s at the demo's 5 Hz: the recorder must see every output, even when a busy core
    # stalls its executor for a second (a fresh-clone CI run under load recorded 24 of 30 detections with depth 5).
    perception_params: dict[str, object] = {"stats_path": str(out / "perception_stats.json"),
                                            "qos.reliability": "reliable", "qos.depth": 10}
    if args.checkpoint:
        perception_params["encoder.checkpoint"] = args.checkpoint
    for item in args.set:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise SystemExit(f"demo: --set '{item}': expected KEY=VALUE")
        perception_params[key.strip()] = value
    perception = node_command(f"{PKG}.perception_node", "perception_node", namespace="/camera",
                              params=perception_params, remaps={"image": "image_raw"})
    camera = node_command(f"{PKG}.camera_node", "camera_node", namespace="/camera", params={
        "source.uri": source, "source.rate_hz": args.rate, "qos.reliability": "reliable",
        "wait_for_subscribers": 1, "wait_timeout_s": 120.0, "startup_delay_s": 0.5, "exit_at_end": True,
        "max_frames": args.max_frames, "stats_path": str(out / "camera_stats.json"),
    })
    return [ManagedProcess(name, cmd, env, out / f"{name}.log", echo)
            for name, cmd in (("recorder", recorder), ("perception", perception), ("camera", camera))]


def _write_overlay(bag: Path, out_path: Path) -> int:
    """Read ``debug/image`` back from the recorded bag into an MP4; returns the frame count."""
    from perception.io.bag import BagSource
    from perception.runtime.video_writer import VideoWriter

    count = 0
    with BagSource(bag, topic="/camera/debug/image") as source, VideoWriter(out_path, fps=10.0) as writer:
        for frame in source:
            writer.write(frame.image)
            count += 1
    return count


def summarise(out: Path, elapsed_s: float, source: str) -> dict:
    camera = read_json(out / "camera_stats.json")
    perception = read_json(out / "perception_stats.json")
    recorder = read_json(out / "recorder_stats.json")
    det = recorder.get("/camera/detections", {})
    return {
        "source": source,
        "frames_published": camera.get("published", 0),
        "frames_received": perception.get("received", 0),
        "frames_processed": perception.get("processed", 0),
        "detections_msgs": det.get("count", 0),
        "features_msgs": recorder.get("/camera/features", {}).get("count", 0),
        "pca_msgs": recorder.get("/camera/features/pca", {}).get("count", 0),
        "debug_msgs": recorder.get("/camera/debug/image", {}).get("count", 0),
        "diagnostics_msgs": recorder.get("/diagnostics", {}).get("count", 0),
        "fps": det.get("rate_hz", 0.0),
        "latency_ms": det.get("latency_ms", {}),
        "drops": perception.get("dropped", 0),
        "lost_in_transport": max(0, camera.get("published", 0) - perception.get("received", 0)),
        "bad_messages": perception.get("bad_messages", 0),
        "node_processing_ms": {"p50": perception.get("latency_p50_ms"), "p95": perception.get("latency_p95_ms")},
        "last_frame_stage_ms": {k[:-3]: v for k, v in perception.items()
                                if k in ("preprocess_ms", "encoder_ms", "detection_ms", "visualise_ms", "total_ms")},
        "device": perception.get("device", ""),
        "elapsed_s": round(elapsed_s, 2),
    }


def _print_summary(summary: dict, out: Path) -> None:
    lat = summary["latency_ms"] or {}
    fmt = lambda v: "n/a" if v is None else f"{v:.1f}"  # noqa: E731
    print("\nDemo: camera_node -> perception_node -> recorder_node, three processes over DDS")
    print(f"  source            {summary['source']}")
    print(f"  frames            {summary['frames_published']} published, {summary['frames_received']} received, "
          f"{summary['frames_processed']} processed, {summary['drops']} dropped (latest-only)")
    print(f"  outputs           {summary['detections_msgs']} detections, {summary['features_msgs']} features, "
          f"{summary['debug_msgs']} overlays, {summary['diagnostics_msgs']} diagnostics messages")
    print(f"  throughput        {summary['fps']:.1f} fps on {summary['device']}")
    print(f"  latency (ms)      p50 {fmt(lat.get('p50'))}  p95 {fmt(lat.get('p95'))}  p99 {fmt(lat.get('p99'))}"
          "  (input stamp -> output received)")
    node = summary["node_processing_ms"]
    print(f"  in the node (ms)  p50 {fmt(node.get('p50'))}  p95 {fmt(node.get('p95'))}  (frame received -> published)")
    print(f"  outputs in        {out}/")
    print(f"    summary.json    the numbers above;  overlay.mp4  boxes and track ids over the clip")
    print(f"    bag/            MCAP bag of the outputs (open in Foxglove, or `dualstream replay` later)")


def _wait_ready(ready_file: Path, procs: tuple[ManagedProcess, ...], timeout: float) -> None:
    """Wait until the recorder has matched every output topic (so no output is lost at the start)."""
    deadline = time.monotonic() + timeout
    while not ready_file.exists():
        dead = [p.name for p in procs if p.poll() is not None]
        if dead:
            raise RuntimeError(f"demo: {', '.join(dead)} exited during start-up; see the logs")
        if time.monotonic() > deadline:
            print(f"demo: outputs not matched after {timeout:.0f} s; starting the camera anyway", file=sys.stderr)
            return
        time.sleep(0.1)


def run(args: argparse.Namespace) -> int:
    out = Path(args.out)
    if out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True)
    source = _source(args)
    recorder, perception, camera = _processes(args, out, source)
    started = time.monotonic()
    try:
        recorder.start()
        perception.start()
        _wait_ready(out / "recorder_ready.json", (recorder, perception), timeout=min(args.timeout, 180.0))
        camera.start()
        camera.wait(timeout=args.timeout)
        time.sleep(1.5)  # let the last frame through the model and the recorder
    finally:
        for proc in (camera, perception, recorder):
            proc.stop(timeout=10.0)
    elapsed = time.monotonic() - started
    overlay_frames = _write_overlay(out / "bag", out / "overlay.mp4") if (out / "bag").exists() else 0
    summary = summarise(out, elapsed, source)
    summary["overlay_frames"] = overlay_frames
    write_json(out / "summary.json", summary)
    _print_summary(summary, out)
    empty = [k for k in ("frames_published", "frames_processed", "detections_msgs", "features_msgs",
                         "overlay_frames") if not summary[k]]
    if empty:
        print(f"demo FAILED: nothing from {', '.join(empty)}; see the logs in {out}/", file=sys.stderr)
        return 1
    return 0
