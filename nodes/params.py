"""ROS parameters from the core's config dataclasses, in one place instead of one ``declare_parameter`` per field.

Every leaf of a config dataclass becomes a parameter named by its dotted path (``detector.score_threshold``), declared
with a descriptor (type, description, read-only where a change needs a restart). ``ros__parameters`` YAML files set
them as usual. Runtime changes are checked by ``ConfigParameters.validate``: the new values go through the same typed
loader as YAML configs, so a wrong type or an unknown key is refused with the loader's message as the reason.
"""

from __future__ import annotations

import dataclasses
import typing
from typing import Any, Callable, Iterable

from rcl_interfaces.msg import ParameterDescriptor, SetParametersResult
from rclpy.node import Node
from rclpy.parameter import Parameter

from perception.config import ConfigError, flatten_config, load_config, nest_dotted

_ROS_TYPES = {bool: Parameter.Type.BOOL, int: Parameter.Type.INTEGER, float: Parameter.Type.DOUBLE,
              str: Parameter.Type.STRING}


def _leaves(cfg: Any, prefix: str = "") -> Iterable[tuple[str, Any, type]]:
    hints = typing.get_type_hints(type(cfg))
    for f in dataclasses.fields(cfg):
        value = getattr(cfg, f.name)
        name = f"{prefix}{f.name}"
        if dataclasses.is_dataclass(value):
            yield from _leaves(value, name + ".")
        elif hints[f.name] in _ROS_TYPES:
            yield name, value, hints[f.name]


class ConfigParameters:
    """Declares a config's fields as parameters of ``node`` and keeps the resolved config in step with them.

    read_only: dotted prefixes (``"encoder."``) whose parameters are read-only at run time.
    on_change: called with the new config after an accepted runtime change.
    """

    def __init__(self, node: Node, cfg: Any, read_only: tuple[str, ...] = (),
                 descriptions: dict[str, str] | None = None,
                 on_change: Callable[[Any], None] | None = None) -> None:
        self._node = node
        self._cls = type(cfg)
        self._on_change = on_change
        self._names: dict[str, type] = {}
        descriptions = descriptions or {}
        for name, default, tp in _leaves(cfg):
            # dynamic_typing: the type is checked by the config loader, whose refusal names the parameter and the
            # expected type (rclpy's own check only says "expected '3' got '4'"); ints are accepted for floats.
            desc = ParameterDescriptor(
                name=name, type=int(_ROS_TYPES[tp]), dynamic_typing=True,
                description=descriptions.get(name, f"{name} ({tp.__name__}); see perception/config.py"),
                read_only=any(name.startswith(p) for p in read_only),
            )
            node.declare_parameter(name, default, desc)
            self._names[name] = tp
        self.config = self._build({n: node.get_parameter(n).value for n in self._names})
        node.add_on_set_parameters_callback(self._on_set)

    def _build(self, flat: dict[str, Any]) -> Any:
        return load_config(nest_dotted(flat), cls=self._cls)

    def validate(self, params: list[Parameter]) -> tuple[Any | None, str]:
        """The config these parameter changes would give, or None and the reason they are refused."""
        flat = flatten_config(self.config)
        for p in params:
            if p.name not in self._names:
                continue
            flat[p.name] = p.value
        try:
            return self._build(flat), ""
        except ConfigError as exc:
            return None, str(exc)

    def _on_set(self, params: list[Parameter]) -> SetParametersResult:
        new_cfg, reason = self.validate(params)
        if new_cfg is None:
            self._node.get_logger().warning(f"parameter change refused: {reason}")
            return SetParametersResult(successful=False, reason=reason)
        old, self.config = self.config, new_cfg
        if self._on_change is not None:
            try:
                self._on_change(new_cfg)
            except ValueError as exc:  # ConfigError included: the node could not apply it (an unknown detector...)
                self.config = old
                self._node.get_logger().warning(f"parameter change refused: {exc}")
                return SetParametersResult(successful=False, reason=str(exc))
        return SetParametersResult(successful=True)
