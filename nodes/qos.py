"""QoS profiles from parameters: sensor-data defaults (best effort, keep last 1), reliability and depth settable."""

from __future__ import annotations

from rclpy.qos import HistoryPolicy, QoSProfile, ReliabilityPolicy, DurabilityPolicy

RELIABILITY = {"best_effort": ReliabilityPolicy.BEST_EFFORT, "reliable": ReliabilityPolicy.RELIABLE}


def image_qos(reliability: str = "best_effort", depth: int = 1) -> QoSProfile:
    """The profile for image and feature topics. Raises ValueError naming the bad value."""
    if reliability not in RELIABILITY:
        raise ValueError(f"qos.reliability '{reliability}': expected one of {sorted(RELIABILITY)}")
    if depth < 1:
        raise ValueError(f"qos.depth {depth}: must be at least 1")
    return QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=depth, reliability=RELIABILITY[reliability],
                      durability=DurabilityPolicy.VOLATILE)
