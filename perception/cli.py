"""The ``dualstream`` command: a thin dispatcher over the subcommand modules in ``perception.commands``.

Adding a subcommand: write ``perception/commands/<name>.py`` with ``add_arguments(parser)`` and
``run(args) -> int`` (help text: the module docstring's first line), then add one line to ``COMMANDS``.
User errors (a bad config key, a source that cannot be opened, a missing checkpoint) print one line naming the
problem and exit with status 2; Ctrl-C exits with 130.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys
from types import ModuleType
from typing import Callable, Sequence

AddArguments = Callable[[argparse.ArgumentParser], None]
Handler = Callable[[argparse.Namespace], int]

# name -> module (in perception/commands/) with add_arguments(parser) and run(args) -> int, or a group of them
# (``dualstream eval propagate``): name -> {subname -> module}
COMMANDS: dict[str, str | dict[str, str]] = {
    "run": "perception.commands.run",
    "demo": "perception.commands.demo",
    "launch": "perception.commands.launch",
    "pretrain": "perception.commands.pretrain",
    "calibrate": "perception.commands.calibrate",
    "record": "perception.commands.record",
    "replay": "perception.commands.replay",
    "bench": "perception.commands.bench",
    "export": "perception.commands.export",
    "bag": {"from-video": "perception.commands.bag_from_video"},
    "eval": {
        "propagate": "perception.commands.eval_propagate",
        "detect": "perception.commands.eval_detect",
        "adapt": "perception.commands.eval_adapt",
        "bag": "perception.commands.eval_bag",
    },
    "fewshot": {"fit": "perception.commands.fewshot_fit"},
}
GROUP_HELP = {"eval": "evaluate a model or a method on labelled data (see `dualstream eval <task> --help`)",
              "bag": "make rosbag2 bags (see `dualstream bag <task> --help`)"}

EXIT_USAGE = 2
EXIT_INTERRUPTED = 130


def load_command(module_name: str) -> tuple[AddArguments, Handler, str]:
    """``(add_arguments, handler, help)`` of the subcommand module ``module_name``."""
    module: ModuleType = importlib.import_module(module_name)
    summary = (module.__doc__ or "").strip().splitlines()
    return module.add_arguments, module.run, summary[0] if summary else ""


def user_errors() -> tuple[type[BaseException], ...]:
    """Exception types that mean "the input is wrong" (exit 2, one line), not "the program is wrong"."""
    from perception.config import ConfigError  # noqa: PLC0415
    from perception.io.frame import SourceError  # noqa: PLC0415

    errors: list[type[BaseException]] = [ConfigError, SourceError, FileNotFoundError]
    for module, name in (("perception.runtime.device", "DeviceError"), ("perception.models.checkpoint", "CheckpointError")):
        try:
            errors.append(getattr(importlib.import_module(module), name))
        except (ImportError, AttributeError):
            pass
    return tuple(errors)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="dualstream", description="dual-stream video perception: run, evaluate, "
                                     "train and demo the pipeline (see `dualstream <command> --help`)")
    parser.add_argument("-v", "--verbose", action="store_true", help="log debug messages")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name, target in COMMANDS.items():
        if isinstance(target, dict):
            group = sub.add_parser(name, help=GROUP_HELP.get(name, ""), description=GROUP_HELP.get(name, ""))
            inner = group.add_subparsers(dest="subcommand", metavar="TASK", required=True)
            for subname, module_name in target.items():
                _add_command(inner, subname, module_name)
        else:
            _add_command(sub, name, target)
    return parser


def _add_command(sub: argparse._SubParsersAction, name: str, module_name: str) -> None:
    try:
        add_arguments, handler, summary = load_command(module_name)
    except ImportError as exc:  # one broken command must not take the others down
        _add_unavailable(sub, name, module_name, exc)
        return
    command = sub.add_parser(name, help=summary, description=summary)
    add_arguments(command)
    command.set_defaults(handler=handler)


def _add_unavailable(sub: argparse._SubParsersAction, name: str, module_name: str, exc: ImportError) -> None:
    """A placeholder for a command whose module does not import: it says why and exits 1."""
    reason = f"unavailable ({module_name} does not import: {exc})"
    command = sub.add_parser(name, help=reason, description=reason)
    command.add_argument("ignored", nargs=argparse.REMAINDER, help=argparse.SUPPRESS)

    def handler(args: argparse.Namespace) -> int:
        print(f"dualstream {name}: {reason}", file=sys.stderr)
        return 1

    command.set_defaults(handler=handler)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``dualstream``; returns the exit status."""
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO,
                        format="%(levelname)s %(name)s: %(message)s", stream=sys.stderr)
    try:
        return int(args.handler(args) or 0)
    except KeyboardInterrupt:
        print(f"dualstream {args.command}: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except user_errors() as exc:
        print(f"dualstream {args.command}: error: {exc}", file=sys.stderr)
        return EXIT_USAGE


if __name__ == "__main__":
    sys.exit(main())
