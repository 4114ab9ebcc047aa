"""The pipeline through the ROS 2 graph: camera_node -> perception_node -> recorder_node, three processes over DDS.

``measure_ros_graph(video, out)`` starts the processes through :mod:`perception.runtime.processes` (the graph's DDS
settings in every process), the recorder first (it subscribes ``detections`` best effort, which matches either
reliability), then ``perception_node`` with its default parameters (plus ``params``), waits until the recorder
has matched the output, then the camera publishing ``video`` at ``rate_hz``
(``startup_delay_s`` after the perception node subscribed, so its model is loaded and warm). After the camera's
last frame it waits ``drain_s`` for the last results and stops everything with SIGINT (the nodes write their
counters). Reported, from the nodes' own stats files:

- ``fps``: the rate at which detections arrived at the recorder (``(count - 1) / (last - first)``);
- ``latency_ms``: p50/p95/p99 from the input image's header stamp (set by the camera when it published) to the
  detections' receipt by the recorder (the stamp is copied through);
- ``drops``: frames published by the camera that produced no detections message (replaced in the perception node's
  latest-only slot, lost in transport or failed), and ``drop_rate`` = drops / published;
- ``stages``: where each delivered frame's latency went (``perception.runtime.frame_timeline``): the perception
  node's marks joined by stamp with the recorder's receipt (``published->delivered``), per-step percentiles, and the
  mean of each step over the slowest 5 % of frames (``stages.tail``).

The image topic uses keep-last depth 1 (a newer frame replaces an unsent one: latest-only, never a queue) with
``reliability="reliable"`` by default; ``reliability="best_effort"`` measures the nodes' sensor-data default. Under
``LARGE_DATA`` best effort lost 80 of 90 768x576 frames between two processes; with the graph's DDS profile
(``config/fastdds_shm.xml``) both deliver every frame, and measured the same in alternating graph runs.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Mapping

from perception.io.stats_files import read_json
from perception.runtime.frame_timeline import MARKS, summarise as summarise_timeline
from perception.runtime.processes import ManagedProcess, graph_environment, node_command

PKG = "dualstream_perception"
NAMESPACE = "/bench"


def _commands(video: str, out: Path, rate_hz: float, max_frames: int, params: Mapping[str, object],
              startup_delay_s: float, reliability: str) -> dict[str, list[str]]:
    detections = f"{NAMESPACE}/detections"
    recorder = node_command(f"{PKG}.recorder_node", "bench_recorder", params={
        "topics": [detections], "types": ["vision_msgs/msg/Detection2DArray"], "output": str(out / "bag"),
        "storage": "mcap", "stats_path": str(out / "recorder_stats.json"), "reliability": "best_effort",
        "depth": 10, "ready_path": str(out / "recorder_ready.json"),
    })
    perception = node_command(f"{PKG}.perception_node", "perception_node", namespace=NAMESPACE,
                              params={"stats_path": str(out / "perception_stats.json"),
                                      "qos.reliability": reliability, "qos.depth": 1, **params},
                              remaps={"image": "image_raw"})
    camera = node_command(f"{PKG}.camera_node", "camera_node", namespace=NAMESPACE, params={
        "source.uri": video, "source.rate_hz": rate_hz, "qos.reliability": reliability, "qos.depth": 1,
        "wait_for_subscribers": 1, "wait_timeout_s": 180.0,
        "startup_delay_s": startup_delay_s, "exit_at_end": True, "max_frames": max_frames,
        "stats_path": str(out / "camera_stats.json"),
    })
    return {"recorder": recorder, "perception": perception, "camera": camera}


def _wait_ready(path: Path, procs: list[ManagedProcess], timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while not path.exists():
        dead = [p.name for p in procs if p.poll() is not None]
        if dead:
            raise RuntimeError(f"bench ros_graph: {', '.join(dead)} exited during start-up; see the logs in "
                               f"{path.parent}")
        if time.monotonic() > deadline:
            raise RuntimeError(f"bench ros_graph: the recorder did not match {NAMESPACE}/detections within "
                               f"{timeout_s:.0f} s; see the logs in {path.parent}")
        time.sleep(0.1)


def joined_timeline(perception: dict, receipts: list) -> dict:
    """The node's per-frame marks (``timeline_rows``) extended by the recorder's receipt of the same stamp, summarised
    (``frame_timeline.summarise``); frames the recorder did not get are left out."""
    received = {int(stamp): int(at) for stamp, at in receipts}
    rows = [{**row, "delivered": received[row["stamp"]]} for row in perception.get("timeline_rows", [])
            if row.get("stamp") in received]
    return summarise_timeline(rows, (*MARKS, "delivered"))


def summarise(out: Path) -> dict:
    """The graph's numbers from the stats files the three nodes wrote into ``out``."""
    camera = read_json(out / "camera_stats.json")
    perception = read_json(out / "perception_stats.json")
    det = read_json(out / "recorder_stats.json").get(f"{NAMESPACE}/detections", {})
    published = int(camera.get("published", 0))
    delivered = int(det.get("count", 0))
    drops = max(0, published - delivered)
    return {
        "fps": round(float(det.get("rate_hz", 0.0)), 2),
        "latency_ms": det.get("latency_ms", {}),
        "drops": drops,
        "drop_rate": round(drops / published, 4) if published else None,
        "published": published,
        "received": int(perception.get("received", 0)),
        "processed": int(perception.get("processed", 0)),
        "dropped_latest_only": int(perception.get("dropped", 0)),
        "delivered": delivered,
        "node_processing_ms": {"p50": perception.get("latency_p50_ms"), "p95": perception.get("latency_p95_ms")},
        "device": perception.get("device", ""),
        "stages": joined_timeline(perception, det.get("receipts", [])),
    }


def measure_ros_graph(video: str, out: str | Path, rate_hz: float = 30.0, max_frames: int = 0,
                      params: Mapping[str, object] | None = None, env: Mapping[str, str] | None = None,
                      startup_delay_s: float = 3.0, drain_s: float = 2.0, timeout_s: float = 600.0,
                      echo: bool = False, reliability: str = "reliable") -> dict:
    """Run the graph on ``video`` and return :func:`summarise`'s numbers (plus the settings used)."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    for stale in ("recorder_ready.json", "camera_stats.json", "perception_stats.json", "recorder_stats.json"):
        (out / stale).unlink(missing_ok=True)
    if (out / "bag").exists():
        import shutil  # noqa: PLC0415

        shutil.rmtree(out / "bag")
    commands = _commands(str(video), out, rate_hz, max_frames, dict(params or {}), startup_delay_s, reliability)
    environment = graph_environment(dict(env or {}))
    procs = {name: ManagedProcess(name, cmd, environment, out / f"{name}.log", sys.stderr if echo else None)
             for name, cmd in commands.items()}
    started = time.monotonic()
    try:
        procs["recorder"].start()
        procs["perception"].start()
        _wait_ready(out / "recorder_ready.json", [procs["recorder"], procs["perception"]], min(timeout_s, 180.0))
        procs["camera"].start()
        if procs["camera"].wait(timeout=timeout_s) is None:
            raise RuntimeError(f"bench ros_graph: the camera did not finish within {timeout_s:.0f} s")
        time.sleep(drain_s)
    finally:
        for name in ("camera", "perception", "recorder"):
            procs[name].stop(timeout=10.0)
    result = summarise(out)
    result.update(rate_hz=rate_hz, max_frames=max_frames, params=dict(params or {}),
                  image_qos=f"{reliability}, depth 1",
                  elapsed_s=round(time.monotonic() - started, 1), logs=str(out))
    return result
