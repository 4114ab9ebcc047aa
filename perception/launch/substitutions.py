"""``$(...)`` substitutions of the ROS 2 launch frontends (XML and YAML), evaluated without ``launch``.

Supported, with the meaning ``ros2 launch`` gives them (launch/launch_ros ``frontend`` substitutions):

| substitution | value |
|---|---|
| ``$(var NAME)`` | a launch argument (``arg``) or ``let`` variable; an unknown name is an error |
| ``$(env NAME [DEFAULT])`` | environment variable; unset without a default is an error |
| ``$(optenv NAME [DEFAULT])`` | environment variable, or DEFAULT (empty when not given) |
| ``$(find-pkg-share PKG)`` / ``$(find-pkg-prefix PKG)`` | the package's share directory / install prefix |
| ``$(dirname)`` / ``$(filename)`` | folder / path of the launch file being read |
| ``$(anon NAME)`` | NAME with a per-launch unique suffix (the same NAME gives the same value in one launch) |
| ``$(not X)``, ``$(and X Y)``, ``$(or X Y)``, ``$(equals A B)`` | boolean helpers giving ``true``/``false`` |

Substitutions nest (``$(env CKPT $(var default_ckpt))``); arguments split on whitespace, single or double quotes
group words. ``$(eval ...)``, ``$(command ...)`` and ``$(exec-in-pkg ...)`` are refused: they run code or programs
while reading the file (``../shared/STYLE.md``: launch files must not run subprocesses or ``eval``).
"""

from __future__ import annotations

import os
import shlex
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Mapping

TRUE_WORDS = {"true", "1"}
FALSE_WORDS = {"false", "0"}
REFUSED = {"eval", "command", "exec-in-pkg", "exec_in_package", "python"}


class LaunchError(ValueError):
    """A launch file or a launch argument is wrong; the message names the file, the action and the problem."""


@dataclass
class Scope:
    """What a substitution can see: variables, the environment given to processes, the file being read."""

    variables: dict[str, str] = field(default_factory=dict)
    env: dict[str, str] = field(default_factory=lambda: dict(os.environ))
    file: Path = Path("launch.yaml")
    namespace: str = "/"
    anon: dict[str, str] = field(default_factory=dict)

    def child(self) -> "Scope":
        """A copy for a scoped group: changes inside do not leak out (``anon`` names stay shared)."""
        return Scope(dict(self.variables), dict(self.env), self.file, self.namespace, self.anon)


def parse_bool(text: str, what: str) -> bool:
    """``true``/``false``/``1``/``0`` (any case), as launch conditions accept them."""
    word = str(text).strip().lower()
    if word in TRUE_WORDS:
        return True
    if word in FALSE_WORDS:
        return False
    raise LaunchError(f"{what}: expected true, false, 1 or 0, got '{text}'")


def _find_close(text: str, start: int) -> int:
    """Index of the ``)`` closing the ``$(`` whose content starts at ``start``."""
    depth, i, quote = 1, start, ""
    while i < len(text):
        ch = text[i]
        if quote:
            quote = "" if ch == quote else quote
        elif ch in "'\"":
            quote = ch
        elif text.startswith("$(", i):
            depth += 1
            i += 1
        elif ch == ")":
            depth -= 1
            if depth == 0:
                return i
        i += 1
    raise LaunchError(f"unclosed substitution in '{text}'")


def substitute(text: object, scope: Scope, resolve_package: Callable[[str, str], str] | None = None) -> str:
    """``text`` with every ``$(...)`` replaced; non-strings are returned as their string form."""
    text = str(text)
    out: list[str] = []
    i = 0
    while True:
        j = text.find("$(", i)
        if j < 0:
            out.append(text[i:])
            return "".join(out)
        out.append(text[i:j])
        end = _find_close(text, j + 2)
        inner = substitute(text[j + 2:end], scope, resolve_package)
        out.append(_evaluate(inner, scope, resolve_package))
        i = end + 1


def _evaluate(inner: str, scope: Scope, resolve_package: Callable[[str, str], str] | None) -> str:
    try:
        words = shlex.split(inner)
    except ValueError as exc:
        raise LaunchError(f"$({inner}): {exc}") from exc
    if not words:
        raise LaunchError("empty substitution $()")
    kind, args = words[0], words[1:]
    if kind in REFUSED:
        raise LaunchError(f"$({inner}): '{kind}' runs code while reading the launch file and is not supported; "
                          "use if/unless with $(var ...) instead")
    handler = _HANDLERS.get(kind)
    if handler is None:
        raise LaunchError(f"$({inner}): unknown substitution '{kind}' (known: {', '.join(sorted(_HANDLERS))})")
    return handler(args, scope, resolve_package, inner)


def _arity(inner: str, args: list[str], low: int, high: int) -> None:
    if not low <= len(args) <= high:
        expected = str(low) if low == high else f"{low} to {high}"
        raise LaunchError(f"$({inner}): expected {expected} argument(s), got {len(args)}")


def _var(args, scope, _res, inner) -> str:
    _arity(inner, args, 1, 1)
    if args[0] not in scope.variables:
        known = ", ".join(sorted(scope.variables)) or "none"
        raise LaunchError(f"$({inner}): no launch argument or variable '{args[0]}' (known: {known})")
    return scope.variables[args[0]]


def _env(args, scope, _res, inner) -> str:
    _arity(inner, args, 1, 2)
    if args[0] in scope.env:
        return scope.env[args[0]]
    if len(args) == 2:
        return args[1]
    raise LaunchError(f"$({inner}): environment variable {args[0]} is not set (give a default: $(env {args[0]} X))")


def _optenv(args, scope, _res, inner) -> str:
    _arity(inner, args, 1, 2)
    return scope.env.get(args[0], args[1] if len(args) == 2 else "")


def _package(kind: str) -> Callable:
    def handler(args, _scope, resolve_package, inner) -> str:
        _arity(inner, args, 1, 1)
        if resolve_package is None:
            raise LaunchError(f"$({inner}): no package resolver")
        return resolve_package(kind, args[0])
    return handler


def _dirname(args, scope, _res, inner) -> str:
    _arity(inner, args, 0, 0)
    return str(scope.file.resolve().parent)


def _filename(args, scope, _res, inner) -> str:
    _arity(inner, args, 0, 0)
    return str(scope.file.resolve())


def _anon(args, scope, _res, inner) -> str:
    _arity(inner, args, 1, 1)
    return scope.anon.setdefault(args[0], f"{args[0]}_{uuid.uuid4().hex[:8]}")


def _not(args, _scope, _res, inner) -> str:
    _arity(inner, args, 1, 1)
    return str(not parse_bool(args[0], f"$({inner})")).lower()


def _and(args, _scope, _res, inner) -> str:
    _arity(inner, args, 2, 2)
    return str(all(parse_bool(a, f"$({inner})") for a in args)).lower()


def _or(args, _scope, _res, inner) -> str:
    _arity(inner, args, 2, 2)
    return str(any(parse_bool(a, f"$({inner})") for a in args)).lower()


def _equals(args, _scope, _res, inner) -> str:
    _arity(inner, args, 2, 2)
    return str(args[0] == args[1]).lower()


_HANDLERS: Mapping[str, Callable] = {
    "var": _var, "env": _env, "optenv": _optenv, "find-pkg-share": _package("share"),
    "find-pkg-prefix": _package("prefix"), "dirname": _dirname, "filename": _filename, "anon": _anon,
    "not": _not, "and": _and, "or": _or, "equals": _equals,
}
