"""Replay a rosbag2 bag (mcap or sqlite3) with its original timing, scaled, or as fast as possible, with /clock.

Runs ``dualstream_perception.replay_node`` (timing in ``perception.replay.player``). Nodes that should follow the
bag's time run with ``use_sim_time:=true``. The bag and topics are checked here first: a missing topic is an error
listing the bag's topics; a damaged bag is replayed as far as it can be read, with a warning saying where it stops.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from perception.io.stats_files import read_json
from perception.replay.bag_access import inspect_bag
from perception.replay.player import parse_remaps
from perception.runtime.processes import ManagedProcess, graph_environment, node_command


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--bag", required=True, help="rosbag2 folder (or a bare .mcap)")
    parser.add_argument("--rate", type=float, default=1.0,
                        help="time scale: 1 original timing, 2 twice as fast, 0 as fast as possible (1)")
    parser.add_argument("--loop", action="store_true", help="start over at the end (until Ctrl-C)")
    parser.add_argument("--topics", nargs="+", default=[], help="topics to publish (default: all)")
    parser.add_argument("--remap", action="append", default=[], metavar="FROM:=TO",
                        help="publish bag topic FROM as TO (repeatable)")
    parser.add_argument("--no-clock", action="store_true", help="do not publish /clock")
    parser.add_argument("--clock-hz", type=float, default=100.0, help="/clock rate between messages (100)")
    parser.add_argument("--wait-for-subscribers", type=int, default=0,
                        help="hold the first message until each image topic has N subscribers (0)")
    parser.add_argument("--max-per-topic", type=int, default=0, help="at most N messages of each topic (0: all)")
    parser.add_argument("--stats", default="", help="write the replay summary JSON here")
    parser.add_argument("--domain-id", type=int, default=None, help="ROS_DOMAIN_ID")


def run(args: argparse.Namespace) -> int:
    info = inspect_bag(args.bag)  # BagError (exit 2, one line) before any process starts
    if args.topics:
        info.require(args.topics)
    try:
        remap = parse_remaps(args.remap)
    except ValueError as exc:
        print(f"replay: {exc}", file=sys.stderr)
        return 2
    if info.damaged:
        print(f"replay: warning: {info.path} is damaged ({info.damaged}); replaying what can be read: "
              f"{info.listing()}", file=sys.stderr)
    params = {"bag": str(Path(args.bag).resolve()), "rate": float(args.rate), "loop": args.loop,
              "topics": list(args.topics) or [""],
              "remap": [f"'{a}:={b}'" for a, b in remap.items()] or [""],  # quoted: ':' inside a YAML flow list
              "clock": not args.no_clock, "clock_hz": float(args.clock_hz),
              "wait_for_subscribers": args.wait_for_subscribers, "max_per_topic": args.max_per_topic,
              "stats_path": args.stats}
    extra = {"ROS_DOMAIN_ID": str(args.domain_id)} if args.domain_id is not None else {}
    proc = ManagedProcess("replay", node_command("dualstream_perception.replay_node", "replay_node", params=params),
                          graph_environment(extra), echo=sys.stderr).start()
    try:
        code = proc.wait()
    finally:
        proc.stop()
    if args.stats:
        stats = read_json(args.stats)
        print(f"replayed {stats.get('total', 0)} messages in {stats.get('wall_s', 0):.1f} s"
              + (f"; the bag stops early: {stats['read_error']}" if stats.get("read_error") else ""))
    return int(code or 0)
