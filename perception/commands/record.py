"""Record live topics into a rosbag2 bag (mcap or sqlite3) as raw CDR, their types found on the graph.

Runs ``dualstream_perception.record_node`` until Ctrl-C, ``--duration`` or ``--max-messages``. A topic that no
publisher offers within ``--discovery-timeout`` is an error naming it and listing the graph's topics.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from perception.io.bag_writer import STORAGES
from perception.io.stats_files import read_json
from perception.runtime.processes import ManagedProcess, graph_environment, node_command


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--topics", nargs="+", required=True, help="topics to record")
    parser.add_argument("--out", required=True, help="bag folder to create (must not exist)")
    parser.add_argument("--storage", choices=sorted(STORAGES), default="mcap", help="bag storage (mcap)")
    parser.add_argument("--duration", type=float, default=0.0, help="stop after this many seconds (0: Ctrl-C)")
    parser.add_argument("--max-messages", type=int, default=0, help="stop once every topic has N messages (0)")
    parser.add_argument("--discovery-timeout", type=float, default=10.0, help="seconds to wait for the topics (10)")
    parser.add_argument("--reliability", choices=("reliable", "best_effort"), default="reliable",
                        help="subscription reliability (reliable)")
    parser.add_argument("--domain-id", type=int, default=None, help="ROS_DOMAIN_ID")


def run(args: argparse.Namespace) -> int:
    out = Path(args.out)
    if out.exists():
        print(f"record: {out} already exists; choose a new folder", file=sys.stderr)
        return 2
    stats_path = out.with_name(out.name + ".stats.json")
    params = {"topics": list(args.topics), "output": str(out.resolve()), "storage": args.storage,
              "stats_path": str(stats_path.resolve()), "reliability": args.reliability,
              "discovery_timeout_s": float(args.discovery_timeout), "duration_s": float(args.duration),
              "max_messages": args.max_messages}
    extra = {"ROS_DOMAIN_ID": str(args.domain_id)} if args.domain_id is not None else {}
    proc = ManagedProcess("record", node_command("dualstream_perception.record_node", "recorder_node", params=params),
                          graph_environment(extra), echo=sys.stderr).start()
    try:
        code = proc.wait()
    except KeyboardInterrupt:  # Ctrl-C ends a recording: the node closes the bag cleanly on SIGINT
        code = 0
    finally:
        proc.stop()
    stats = read_json(stats_path)
    if stats:
        print("recorded " + ", ".join(f"{t} {s['count']}" for t, s in stats.items()) + f" into {out}")
    return int(code or 0)
