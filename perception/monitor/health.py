"""``stream_health``: the monitor's report and the adapter's statistics as one level, reasons and flat values for
``/diagnostics`` (so a node adds them with one call).

| source | level |
|---|---|
| monitor (image quality, OOD, drift) | its worst level (tables in ``image_quality`` and ``feature_drift``) |
| adaptation ``fallback_source`` | WARN (serving the frozen source model after repeated guard trips) |
| adaptation ``adapting`` / ``rolled_back`` / ``disabled`` | OK |
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from perception.monitor.levels import OK, WARN, worst
from perception.monitor.monitor import MonitorReport


@dataclass
class HealthSummary:
    level: str = OK
    problems: list[str] = field(default_factory=list)
    values: dict[str, Any] = field(default_factory=dict)


def stream_health(report: MonitorReport | None, adaptation: dict[str, Any] | None) -> HealthSummary:
    """``adaptation``: ``OnlineAdapter.stats()`` or None (adaptation off)."""
    summary = HealthSummary()
    if report is not None:
        summary.level = report.level
        summary.problems += report.problems()
        summary.values.update(report.values())
    if adaptation is None:
        summary.values["adaptation_status"] = "disabled"
        return summary
    summary.values.update({f"adaptation_{k}": v for k, v in adaptation.items()})
    if adaptation.get("status") == "fallback_source":
        summary.level = worst(summary.level, WARN)
        reason = adaptation.get("last_reason") or "repeated guard trips"
        summary.problems.append(f"adaptation fell back to the source model ({reason})")
    return summary
