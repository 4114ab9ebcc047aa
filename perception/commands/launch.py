"""Run a ROS 2 YAML launch file without launch_ros: `dualstream launch FILE.launch.yaml [name:=value ...]`.

The same file works with ``ros2 launch`` on a ROS 2 installation. Also ``dualstream launch PKG FILE`` (the file in
the package's ``launch/`` folder). Processes are supervised: ``respawn: true`` restarts a node with backoff,
Ctrl-C/SIGTERM stops them all (SIGINT, then SIGTERM, then SIGKILL), each line of output is prefixed with the node's
name. ``--show`` prints the arguments and the commands without starting anything.
"""

from __future__ import annotations

import argparse
import shlex
import sys
from pathlib import Path

EXIT_USAGE = 2


def _options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--show", action="store_true",
                        help="print the declared arguments and the resolved commands, start nothing")
    parser.add_argument("--log-dir", default=None, metavar="DIR", help="also write each process's output to "
                        "DIR/<name>.log")
    parser.add_argument("--stop-timeout", type=float, default=3.0, metavar="S",
                        help="seconds between SIGINT and SIGTERM when stopping (default 3)")
    parser.add_argument("--quiet", action="store_true", help="do not echo the processes' output")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    _options(parser)
    parser.add_argument("target", nargs=argparse.REMAINDER, metavar="FILE|PKG FILE [NAME:=VALUE ...]",
                        help="a .launch.yaml path (or a package and a file in its launch/ folder), then launch "
                             "arguments as NAME:=VALUE; the options may also follow")


def _split_options(args: argparse.Namespace) -> argparse.Namespace:
    """Options written after FILE (``dualstream launch f.yaml --show``) parsed out of the remainder."""
    inner = argparse.ArgumentParser(prog="dualstream launch", add_help=False)
    _options(inner)
    inner.add_argument("words", nargs="*")
    parsed = inner.parse_intermixed_args(args.target)
    for name in ("show", "quiet"):
        setattr(parsed, name, getattr(parsed, name) or getattr(args, name))
    parsed.log_dir = parsed.log_dir or args.log_dir
    parsed.stop_timeout = args.stop_timeout if parsed.stop_timeout == 3.0 else parsed.stop_timeout
    return parsed


def resolve_target(words: list[str]) -> tuple[Path, list[str]]:
    """``(launch file, NAME:=VALUE items)`` from the positional words."""
    from perception.launch import LaunchError  # noqa: PLC0415
    from perception.launch.packages import find_package_share  # noqa: PLC0415

    names = [w for w in words if ":=" not in w]
    if not names:
        raise LaunchError("expected a launch file: dualstream launch FILE.launch.yaml [NAME:=VALUE ...]")
    items = [w for w in words if ":=" in w]
    if len(names) == 1:
        return Path(names[0]), items
    if len(names) == 2:
        return find_package_share(names[0]) / "launch" / names[1], items
    raise LaunchError(f"expected FILE or PKG FILE before the NAME:=VALUE arguments, got {names}")


def _show(plan) -> None:
    print(f"launch file {plan.file}")
    print("arguments:")
    for arg in plan.args:
        default = "(required)" if arg.default is None else f"default '{arg.default}'"
        print(f"  {arg.name:<16} {default}: {arg.description}" + (f" {arg.choices}" if arg.choices else ""))
    print("processes:")
    for spec in plan.processes:
        respawn = f" [respawn, delay {spec.respawn_delay:g} s]" if spec.respawn else ""
        print(f"  {spec.label}{respawn}: {shlex.join(spec.argv)}")


def run(args: argparse.Namespace) -> int:
    from perception.launch import LaunchError, LaunchSupervisor, load_launch_file, parse_launch_arguments  # noqa

    args = _split_options(args)
    try:
        path, items = resolve_target(args.words)
        plan = load_launch_file(path, parse_launch_arguments(items))
    except LaunchError as exc:
        print(f"dualstream launch: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    if args.show:
        _show(plan)
        return 0
    if not plan.processes:
        print(f"dualstream launch: {path} starts no process", file=sys.stderr)
        return 0
    supervisor = LaunchSupervisor(plan.processes, log_dir=args.log_dir, echo=None if args.quiet else sys.stderr,
                                  stop_timeout_s=args.stop_timeout)
    return supervisor.run()
