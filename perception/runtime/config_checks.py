"""What can be checked about a perception config before its model is loaded: the lifecycle node's ``configure``.

``startup_problem(cfg)`` returns a sentence naming the field, the value and what is wrong, or ``""``. It reads
files and metadata only (no weights, no device memory), so a failed configure is cheap and leaves nothing behind.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any


def _checkpoint_problem(path: str) -> str:
    from perception.models.checkpoint import CheckpointError, checkpoint_paths, read_checkpoint_meta  # noqa: PLC0415

    try:
        weights, _ = checkpoint_paths(path)
        if not Path(weights).is_file():
            return f"encoder.checkpoint '{path}': file not found ({weights})"
        read_checkpoint_meta(path)
    except CheckpointError as exc:
        return f"encoder.checkpoint '{path}': {exc}"
    return ""


def startup_problem(cfg: Any) -> str:
    """Why ``cfg`` (a ``PerceptionNodeConfig``) cannot start, or ``""``."""
    from perception.detection.detector import build_detector  # noqa: PLC0415
    from perception.models.registry import list_encoders  # noqa: PLC0415
    from perception.runtime.device import DeviceError, resolve_device  # noqa: PLC0415
    import perception.models  # noqa: F401, PLC0415 (registers the built-in encoders)

    if cfg.encoder.checkpoint:
        problem = _checkpoint_problem(cfg.encoder.checkpoint)
        if problem:
            return problem
    elif cfg.encoder.name not in list_encoders():
        return f"encoder.name '{cfg.encoder.name}': unknown (known: {', '.join(list_encoders())})"
    try:
        resolve_device(cfg.runtime.device)
    except DeviceError as exc:
        return f"runtime.device '{cfg.runtime.device}': {exc}"
    try:
        build_detector(cfg.detector)
    except ValueError as exc:
        return str(exc)
    if cfg.input_transport not in ("raw", "compressed"):
        return f"input_transport '{cfg.input_transport}': expected 'raw' or 'compressed'"
    if cfg.qos.reliability not in ("best_effort", "reliable") or cfg.qos.depth < 1:
        return f"qos: reliability '{cfg.qos.reliability}' depth {cfg.qos.depth}: expected best_effort|reliable, >= 1"
    return ""
