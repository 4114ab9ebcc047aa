"""The camera node's ``/diagnostics`` level and message from its source's state (ROS-free apart from nothing: a pure
mapping, so the thresholds are tested without DDS).

States: ``opening`` (the source is being opened), ``streaming``, ``reconnecting`` (a camera whose reads failed is
being reopened with backoff: WARN, with how long it has been down), ``ended`` (a finite source finished: OK),
``failed`` (the source could not be opened or gave up: ERROR with the reason).
"""

from __future__ import annotations

from typing import Any


def source_diagnostic(state: str, published: int, source_status: dict[str, Any] | None = None,
                      error: str = "") -> tuple[str, str, dict[str, Any]]:
    """``(level, message, values)`` for one diagnostics status of the camera node."""
    status = dict(source_status or {})
    if status.get("state") == "reconnecting":
        state = "reconnecting"
    values: dict[str, Any] = {"state": state, "published": published, **{f"source_{k}": v for k, v in status.items()}}
    if error:
        values["error"] = error
    if state == "failed":
        return "ERROR", f"source failed: {error or 'unknown error'}", values
    if state == "reconnecting":
        down = float(status.get("down_s", 0.0))
        return ("WARN", f"camera down for {down:.1f} s, reconnecting (attempt {status.get('attempt', 0)}, next in "
                        f"{float(status.get('next_delay_s', 0.0)):.2f} s)", values)
    if state == "ended":
        return "OK", f"source ended after {published} frames", values
    if state == "opening":
        return "OK", "opening the source", values
    return "OK", "streaming", values
