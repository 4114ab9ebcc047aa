"""Read a ROS 2 YAML launch file (``launch_yaml``'s format) into the processes to start, without ``launch``.

The file is ``launch:`` followed by a list of actions, read in order like ``ros2 launch`` does:

- ``arg``: ``name``, ``default``, ``description``, ``choices`` (a launch argument, set as ``name:=value``)
- ``let``: ``name``, ``value`` (a variable); ``set_env`` / ``unset_env``: ``name`` (, ``value``)
- ``push-ros-namespace`` (or ``push_ros_namespace``): ``namespace`` (relative ones nest, ``/abs`` replaces)
- ``group``: a list of actions, or ``{scoped: true, children: [...]}``; a scoped group's variables, environment
  and namespace do not leak out
- ``include``: ``file`` (a YAML launch file) and ``arg: [{name, value}]``
- ``node``: ``pkg``, ``exec``, ``name``, ``namespace``, ``param`` (``{name, value}``, nested ``{name, param}``,
  ``{from: params.yaml}``), ``remap`` (``{from, to}``), ``env`` (``{name, value}``), ``args``, ``ros_args``,
  ``respawn``, ``respawn_delay``, ``respawn_max_retries``, ``on_exit: shutdown``
- ``executable``: ``cmd``, ``name``, ``env``, ``respawn``, ... (a plain program)

Every action takes ``if:`` / ``unless:`` conditions (``true``/``false``/``1``/``0`` after substitution).
Parameter values given as text are typed by YAML rules when the node starts (as launch_ros does): ``"2"`` is an
integer, ``"true"`` a boolean.
"""

from __future__ import annotations

import os
import shlex
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

import yaml

from perception.launch.packages import executable_command, resolve_package
from perception.launch.substitutions import LaunchError, Scope, parse_bool, substitute


@dataclass
class ArgSpec:
    """A declared launch argument."""

    name: str
    default: str | None
    description: str = ""
    choices: list[str] = field(default_factory=list)


@dataclass
class ProcessSpec:
    """One process to start: ``argv`` with the full environment ``env``, and how to supervise it."""

    label: str
    argv: list[str]
    env: dict[str, str]
    respawn: bool = False
    respawn_delay: float = 0.0
    respawn_max_retries: int = -1  # -1: no limit
    shutdown_on_exit: bool = False
    node_name: str = ""
    namespace: str = ""


@dataclass
class LaunchPlan:
    file: Path
    args: list[ArgSpec]
    variables: dict[str, str]
    processes: list[ProcessSpec]


def join_namespace(base: str, ns: str | None) -> str:
    """``ns`` under ``base`` (an absolute ``ns`` stands alone), normalised to ``/a/b`` (``/`` for the root)."""
    if not ns:
        full = base
    elif ns.startswith("/"):
        full = ns
    else:
        full = base.rstrip("/") + "/" + ns
    parts = [p for p in full.split("/") if p]
    return "/" + "/".join(parts)


def _param_text(value: Any) -> str:
    """A parameter value as ``-p name:=TEXT`` expects it (YAML; an empty string as ``''``)."""
    if isinstance(value, str):
        return value if value else "''"
    return yaml.safe_dump(value, default_flow_style=True).strip().removesuffix("...").strip()


class _Reader:
    def __init__(self, arguments: Mapping[str, str], env: Mapping[str, str] | None) -> None:
        self.arguments = dict(arguments)
        self.base_env = dict(os.environ if env is None else env)
        self.args: list[ArgSpec] = []
        self.processes: list[ProcessSpec] = []
        self._labels: dict[str, int] = {}

    # -- helpers -------------------------------------------------------------------------------------------------
    def sub(self, value: Any, scope: Scope) -> str:
        return substitute(value, scope, lambda kind, pkg: resolve_package(kind, pkg, scope.env))

    def where(self, scope: Scope, action: str) -> str:
        return f"{scope.file}: {action}"

    def enabled(self, body: Any, scope: Scope, action: str) -> bool:
        if not isinstance(body, dict):
            return True
        if "if" in body and not parse_bool(self.sub(body["if"], scope), f"{self.where(scope, action)} if"):
            return False
        if "unless" in body and parse_bool(self.sub(body["unless"], scope), f"{self.where(scope, action)} unless"):
            return False
        return True

    def need(self, body: dict, key: str, scope: Scope, action: str) -> str:
        if key not in body:
            raise LaunchError(f"{self.where(scope, action)}: missing '{key}' (got keys: {', '.join(body) or 'none'})")
        return self.sub(body[key], scope)

    # -- files and actions ---------------------------------------------------------------------------------------
    def read_file(self, path: Path, scope: Scope) -> None:
        if not path.is_file():
            raise LaunchError(f"launch file {path} does not exist")
        try:
            doc = yaml.safe_load(path.read_text())
        except yaml.YAMLError as exc:
            raise LaunchError(f"{path}: not valid YAML: {exc}") from exc
        if not isinstance(doc, dict) or not isinstance(doc.get("launch"), list):
            raise LaunchError(f"{path}: expected a mapping with a 'launch:' list of actions")
        scope.file = path
        self.actions(doc["launch"], scope)

    def actions(self, items: list, scope: Scope) -> None:
        for item in items:
            if not isinstance(item, dict) or len(item) != 1:
                raise LaunchError(f"{scope.file}: each launch entry must be a one-key mapping, got {item!r}")
            ((kind, body),) = item.items()
            handler = _ACTIONS.get(kind)
            if handler is None:
                raise LaunchError(f"{scope.file}: unknown action '{kind}' (supported: {', '.join(sorted(_ACTIONS))})")
            if body is None:
                body = {}
            if self.enabled(body, scope, kind):
                handler(self, body, scope)

    def arg(self, body: dict, scope: Scope) -> None:
        name = self.need(body, "name", scope, "arg")
        default = self.sub(body["default"], scope) if "default" in body else None
        choices = [self.sub(c["value"] if isinstance(c, dict) else c, scope) for c in body.get("choices", [])]
        self.args.append(ArgSpec(name, default, str(body.get("description", "")), choices))
        value = scope.variables.get(name, self.arguments.get(name, default))
        if value is None:
            raise LaunchError(f"{self.where(scope, 'arg')}: argument '{name}' is required (no default): "
                              f"add {name}:=VALUE")
        if choices and value not in choices:
            raise LaunchError(f"{self.where(scope, 'arg')}: {name}:={value} is not one of {choices}")
        scope.variables[name] = value

    def let(self, body: dict, scope: Scope) -> None:
        scope.variables[self.need(body, "name", scope, "let")] = self.need(body, "value", scope, "let")

    def set_env(self, body: dict, scope: Scope) -> None:
        scope.env[self.need(body, "name", scope, "set_env")] = self.need(body, "value", scope, "set_env")

    def unset_env(self, body: dict, scope: Scope) -> None:
        scope.env.pop(self.need(body, "name", scope, "unset_env"), None)

    def push_namespace(self, body: dict, scope: Scope) -> None:
        scope.namespace = join_namespace(scope.namespace, self.need(body, "namespace", scope, "push-ros-namespace"))

    def group(self, body: Any, scope: Scope) -> None:
        if isinstance(body, list):
            body = {"children": body}
        scoped = parse_bool(self.sub(body.get("scoped", "true"), scope), f"{self.where(scope, 'group')} scoped")
        self.actions(body.get("children", []), scope.child() if scoped else scope)

    def include(self, body: dict, scope: Scope) -> None:
        path = Path(self.need(body, "file", scope, "include"))
        if path.suffix not in (".yaml", ".yml"):
            raise LaunchError(f"{self.where(scope, 'include')}: {path}: only YAML launch files can be included "
                              "without launch_ros (use ros2 launch for .py/.xml)")
        inner = scope.child()
        for entry in body.get("arg", []):
            inner.variables[self.need(entry, "name", scope, "include arg")] = self.need(entry, "value", scope,
                                                                                       "include arg")
        self.read_file(path if path.is_absolute() else scope.file.parent / path, inner)

    def node(self, body: dict, scope: Scope) -> None:
        pkg, exe = self.need(body, "pkg", scope, "node"), self.need(body, "exec", scope, "node")
        name = self.sub(body["name"], scope) if "name" in body else ""
        namespace = join_namespace(scope.namespace, self.sub(body["namespace"], scope) if "namespace" in body
                                   else None)
        argv = executable_command(pkg, exe, scope.env) + shlex.split(self.sub(body.get("args", ""), scope))
        ros = ["--ros-args"]
        if name:
            ros += ["-r", f"__node:={name}"]
        if namespace != "/":
            ros += ["-r", f"__ns:={namespace}"]
        for remap in body.get("remap", []):
            ros += ["-r", f"{self.need(remap, 'from', scope, 'remap')}:={self.need(remap, 'to', scope, 'remap')}"]
        ros += self.params(body.get("param", []), scope, "")
        ros += shlex.split(self.sub(body.get("ros_args", ""), scope))
        label = (namespace.strip("/") + "/" if namespace != "/" else "") + (name or exe)
        self.add_process(body, scope, label, argv + ros, name, namespace)

    def params(self, entries: list, scope: Scope, prefix: str) -> list[str]:
        out: list[str] = []
        for entry in entries:
            if "from" in entry:
                path = Path(self.sub(entry["from"], scope))
                if not path.is_file():
                    raise LaunchError(f"{self.where(scope, 'param')}: parameters file {path} does not exist")
                out += ["--params-file", str(path)]
                continue
            name = prefix + self.need(entry, "name", scope, "param")
            if "param" in entry:
                out += self.params(entry["param"], scope, name + ".")
                continue
            if "value" not in entry:
                raise LaunchError(f"{self.where(scope, 'param')} '{name}': missing 'value' (or 'from', 'param')")
            value = entry["value"]
            value = [self.sub(v, scope) if isinstance(v, str) else v for v in value] if isinstance(value, list) \
                else self.sub(value, scope) if isinstance(value, str) else value
            out += ["-p", f"{name}:={_param_text(value)}"]
        return out

    def executable(self, body: dict, scope: Scope) -> None:
        argv = shlex.split(self.need(body, "cmd", scope, "executable")) + shlex.split(self.sub(body.get("args", ""),
                                                                                              scope))
        if not argv:
            raise LaunchError(f"{self.where(scope, 'executable')}: empty cmd")
        name = self.sub(body.get("name", Path(argv[0]).name), scope)
        self.add_process(body, scope, name, argv, "", "")

    def add_process(self, body: dict, scope: Scope, label: str, argv: list[str], name: str, ns: str) -> None:
        env = dict(scope.env)
        for entry in body.get("env", []):
            env[self.need(entry, "name", scope, "env")] = self.need(entry, "value", scope, "env")
        where = self.where(scope, f"'{label}'")
        count = self._labels[label] = self._labels.get(label, 0) + 1
        delay = self.sub(body.get("respawn_delay", 0.0), scope)
        retries = self.sub(body.get("respawn_max_retries", -1), scope)
        try:
            delay_s, max_retries = float(delay), int(retries)
        except ValueError as exc:
            raise LaunchError(f"{where}: respawn_delay/respawn_max_retries: {exc}") from exc
        on_exit = self.sub(body.get("on_exit", ""), scope)
        if on_exit not in ("", "shutdown"):
            raise LaunchError(f"{where}: on_exit '{on_exit}': only 'shutdown' is supported")
        self.processes.append(ProcessSpec(
            label=label if count == 1 else f"{label}-{count}", argv=argv, env=env,
            respawn=parse_bool(self.sub(body.get("respawn", "false"), scope), f"{where} respawn"),
            respawn_delay=delay_s, respawn_max_retries=max_retries, shutdown_on_exit=on_exit == "shutdown",
            node_name=name, namespace=ns))


_ACTIONS = {
    "arg": _Reader.arg, "let": _Reader.let, "set_env": _Reader.set_env, "unset_env": _Reader.unset_env,
    "push-ros-namespace": _Reader.push_namespace, "push_ros_namespace": _Reader.push_namespace,
    "group": _Reader.group, "include": _Reader.include, "node": _Reader.node, "executable": _Reader.executable,
}


def load_launch_file(path: str | Path, arguments: Mapping[str, str] | None = None,
                     env: Mapping[str, str] | None = None) -> LaunchPlan:
    """The processes ``path`` starts with the launch arguments ``arguments`` (``{"namespace": "front"}``).

    Raises ``LaunchError`` naming the file, the action and the problem; an argument given but never declared is
    an error too (it is usually a typo)."""
    reader = _Reader(arguments or {}, env)
    scope = Scope(variables={}, env=dict(reader.base_env), file=Path(path))
    reader.read_file(Path(path), scope)
    declared = {a.name for a in reader.args}
    unknown = sorted(set(reader.arguments) - declared)
    if unknown:
        raise LaunchError(f"{path}: unknown launch argument(s) {', '.join(unknown)} "
                          f"(declared: {', '.join(sorted(declared)) or 'none'})")
    return LaunchPlan(Path(path), reader.args, dict(scope.variables), reader.processes)


def parse_launch_arguments(items: list[str]) -> dict[str, str]:
    """``["name:=value", ...]`` -> ``{"name": "value"}``; anything else is an error naming the item."""
    out: dict[str, str] = {}
    for item in items:
        name, sep, value = item.partition(":=")
        if not sep or not name:
            raise LaunchError(f"launch argument '{item}': expected NAME:=VALUE")
        out[name] = value
    return out
