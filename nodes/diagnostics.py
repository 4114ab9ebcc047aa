"""``/diagnostics`` messages (diagnostic_msgs/DiagnosticArray) from plain dictionaries of counters."""

from __future__ import annotations

from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue

LEVELS = {"OK": DiagnosticStatus.OK, "WARN": DiagnosticStatus.WARN, "ERROR": DiagnosticStatus.ERROR,
          "STALE": DiagnosticStatus.STALE}


def _text(value) -> str:
    if isinstance(value, float):
        return f"{value:.3f}"
    if value is None:
        return ""
    return str(value)


def diagnostic_array(stamp, name: str, hardware_id: str, level: str, message: str, values: dict) -> DiagnosticArray:
    """One status named ``name`` with ``values`` as key/value strings (floats with 3 decimals)."""
    status = DiagnosticStatus(level=LEVELS[level], name=name, message=message, hardware_id=hardware_id)
    status.values = [KeyValue(key=str(k), value=_text(v)) for k, v in values.items()]
    out = DiagnosticArray()
    out.header.stamp = stamp
    out.status.append(status)
    return out


def values_of(array: DiagnosticArray, name_suffix: str = "") -> dict[str, str]:
    """The key/values of the first status whose name ends with ``name_suffix`` (tests and tools read them back)."""
    for status in array.status:
        if status.name.endswith(name_suffix):
            return {kv.key: kv.value for kv in status.values}
    return {}
