"""Running the deployed node graph on a bag: replay_node -> perception_node (use_sim_time) -> recorder_node.

Three processes with the graph's DDS settings (``perception.runtime.processes``): ``recorder_node`` records the
perception outputs (``/eval/detections``, ``/diagnostics``) with their receipt wall times; ``perception_node`` runs in
namespace ``/eval`` with ``use_sim_time`` and its ``image`` (or ``image/compressed``) and ``camera_info`` remapped to
the bag's topics; ``replay_node`` publishes the bag (and ``/clock``) once the recorder and the perception node are
matched, writing the wall time at which each image went out. At ``rate: 0`` the replay waits for each image's
detections before the next one (as fast as the graph takes, no drops by construction); at ``rate > 0`` it keeps the
bag's timing (scaled) and a slow graph drops frames (its latest-only hand-off). Peak-rate trials (``replay``) reuse a
running graph with one replay process per trial.
"""

from __future__ import annotations

import re
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Mapping

from perception.io.bag import COMPRESSED_IMAGE
from perception.io.stats_files import read_json
from perception.replay.bag_access import BagInfo
from perception.runtime.processes import ManagedProcess, graph_environment, node_command

PKG = "dualstream_perception"
NAMESPACE = "/eval"
DETECTIONS_TOPIC = f"{NAMESPACE}/detections"
OUTPUT_TOPICS = {DETECTIONS_TOPIC: "vision_msgs/msg/Detection2DArray",
                 "/diagnostics": "diagnostic_msgs/msg/DiagnosticArray"}


class GraphError(RuntimeError):
    """A process of the graph died or did not come up; the message names it and ends with its last log lines."""


@dataclass
class GraphSpec:
    """What to run: the bag's ``image_topic`` (and ``camera_info_topic``, may be empty), perception parameters
    (``params``, plus a ``params_file``), replay ``rate`` and ``max_frames``, a ROS domain, timeouts."""

    image_topic: str
    camera_info_topic: str = ""
    params: dict[str, object] = field(default_factory=dict)
    params_file: str = ""
    rate: float = 0.0
    max_frames: int = 0
    domain_id: int | None = None
    start_timeout_s: float = 180.0
    ack_timeout_s: float = 30.0
    settle_s: float = 2.0
    echo: IO[str] | None = None


@dataclass
class TrialFiles:
    """Where one replay left its files: ``publish_log`` (JSON lines) and ``stats`` (JSON)."""

    publish_log: Path
    stats: Path
    started_wall_ns: int = 0
    ended_wall_ns: int = 0


class EvalGraph:
    """``with EvalGraph(bag, spec, folder) as graph: trial = graph.replay(rate, max_frames, "main")``; afterwards
    ``folder/outputs`` is the recorded bag and ``folder/perception_stats.json`` the node's counters."""

    def __init__(self, bag: BagInfo, spec: GraphSpec, folder: Path) -> None:
        self.bag, self.spec, self.folder = bag, spec, Path(folder)
        self.folder.mkdir(parents=True, exist_ok=True)
        extra = {"ROS_DOMAIN_ID": str(spec.domain_id)} if spec.domain_id is not None else {}
        self.env = graph_environment(extra)
        self.recorder = self._process("recorder", node_command(f"{PKG}.recorder_node", "eval_recorder", params={
            "topics": list(OUTPUT_TOPICS), "types": list(OUTPUT_TOPICS.values()),
            "output": str(self.folder / "outputs"), "storage": "mcap", "reliability": "reliable", "depth": 100,
            "stats_path": str(self.folder / "recorder_stats.json"),
            "ready_path": str(self.folder / "recorder_ready.json")}))
        self.perception = self._process("perception", self._perception_command())
        self.trials: list[TrialFiles] = []

    def _process(self, name: str, argv: list[str]) -> ManagedProcess:
        return ManagedProcess(name, argv, self.env, self.folder / f"{name}.log", self.spec.echo)

    def _perception_command(self) -> list[str]:
        compressed = self.bag.topics[self.spec.image_topic].msgtype == COMPRESSED_IMAGE
        remaps = {"image/compressed" if compressed else "image": self.spec.image_topic}
        if self.spec.camera_info_topic:
            remaps["camera_info"] = self.spec.camera_info_topic
        params: dict[str, object] = {"use_sim_time": True, "qos.reliability": "reliable", "qos.depth": 5,
                                     "input_transport": "compressed" if compressed else "raw",
                                     "stats_path": str(self.folder / "perception_stats.json")}
        params.update(self.spec.params)
        argv = node_command(f"{PKG}.perception_node", "perception_node", namespace=NAMESPACE, params=params,
                            remaps=remaps)
        if self.spec.params_file:
            argv += ["--params-file", str(Path(self.spec.params_file).resolve())]
        return argv

    def __enter__(self) -> "EvalGraph":
        self.recorder.start()
        self.perception.start()
        ready = self.folder / "recorder_ready.json"
        deadline = time.monotonic() + self.spec.start_timeout_s
        while not ready.exists():
            self._check_alive(self.recorder, self.perception)
            if time.monotonic() > deadline:
                raise GraphError(f"the perception outputs were not matched within {self.spec.start_timeout_s:.0f} s"
                                 + self._tail(self.perception))
            time.sleep(0.1)
        return self

    def __exit__(self, *exc: object) -> None:
        self.perception.stop(timeout=15.0)
        self.recorder.stop(timeout=15.0)

    def _check_alive(self, *procs: ManagedProcess) -> None:
        for proc in procs:
            if proc.poll() is not None:
                raise GraphError(f"{proc.name} exited with status {proc.poll()}" + self._tail(proc))

    @staticmethod
    def _tail(proc: ManagedProcess, lines: int = 15) -> str:
        return "; its last output:\n  " + "\n  ".join(proc.lines[-lines:]) if proc.lines else ""

    def replay(self, rate: float, max_frames: int, name: str, timeout_s: float = 3600.0) -> TrialFiles:
        """One replay of the image topic (and camera_info) through the running graph; returns its files."""
        name = re.sub(r"[^A-Za-z0-9_]", "_", name)  # a ROS node name: letters, digits, underscores
        trial = TrialFiles(self.folder / f"{name}_publish.jsonl", self.folder / f"{name}_replay.json")
        topics = [self.spec.image_topic] + ([self.spec.camera_info_topic] if self.spec.camera_info_topic else [])
        params: dict[str, object] = {
            "bag": str(Path(self.bag.path).resolve()), "topics": topics, "rate": float(rate),
            "max_per_topic": int(max_frames), "wait_for_subscribers": 1, "wait_timeout_s": 60.0,
            "publish_log": str(trial.publish_log), "stats_path": str(trial.stats), "reliability": "reliable",
            "depth": 5, "exit_at_end": True}
        # rate 0: wait for each image's detections; otherwise only count them (the replay's "acked")
        params.update({"ack_topic": DETECTIONS_TOPIC, "ack_wait": rate == 0,
                       "ack_timeout_s": self.spec.ack_timeout_s if rate == 0 else self.spec.settle_s + 1.0})
        proc = self._process(f"replay_{name}", node_command(f"{PKG}.replay_node", f"replay_{name}", params=params))
        trial.started_wall_ns = time.time_ns()
        proc.start()
        deadline = time.monotonic() + timeout_s
        try:
            while proc.poll() is None:
                self._check_alive(self.perception, self.recorder)
                if time.monotonic() > deadline:
                    raise GraphError(f"replay {name} did not finish within {timeout_s:.0f} s")
                time.sleep(0.1)
        finally:
            proc.stop()
        if proc.poll() not in (0, None):
            raise GraphError(f"replay {name} failed with status {proc.poll()}" + self._tail(proc))
        time.sleep(self.spec.settle_s)  # the last frames through the model and into the recorder
        trial.ended_wall_ns = time.time_ns()
        self.trials.append(trial)
        return trial

    def perception_stats(self) -> Mapping[str, object]:
        return read_json(self.folder / "perception_stats.json")


def default_echo(quiet: bool) -> IO[str] | None:
    return None if quiet else sys.stderr
