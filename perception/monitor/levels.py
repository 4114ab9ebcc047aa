"""Health levels shared by the monitor and the node's diagnostics (``diagnostic_msgs/DiagnosticStatus`` names)."""

from __future__ import annotations

OK, WARN, ERROR = "OK", "WARN", "ERROR"
_ORDER = {OK: 0, WARN: 1, ERROR: 2}


def level_above(value: float, warn: float, error: float) -> str:
    """ERROR when ``value >= error``, WARN when ``value >= warn``, else OK (a NaN value is WARN: unknown)."""
    if value != value:
        return WARN
    return ERROR if value >= error else WARN if value >= warn else OK


def level_below(value: float, warn: float, error: float) -> str:
    """ERROR when ``value <= error``, WARN when ``value <= warn``, else OK (a NaN value is WARN: unknown)."""
    if value != value:
        return WARN
    return ERROR if value <= error else WARN if value <= warn else OK


def worst(*levels: str) -> str:
    return max(levels, key=_ORDER.__getitem__, default=OK)
