"""``attach_online_adapter``: build an ``OnlineAdapter`` for a ``Perceiver``'s encoder, resume its saved state, hook
it into the perceiver and start the worker. The one call a node or the command line makes."""

from __future__ import annotations

from typing import Any

from perception.adaptation.adapter import OnlineAdapter
from perception.adaptation.config import AdaptationConfig
from perception.models.checkpoint import file_sha256


def source_sha256_of(perceiver: Any) -> str | None:
    """sha256 of the perceiver's checkpoint file, or None (the adapter then hashes the source state dict)."""
    path = getattr(perceiver, "encoder_path", None)
    return file_sha256(path) if path else None


def attach_online_adapter(perceiver: Any, cfg: AdaptationConfig, stream: str | None = "default",
                          start: bool = True) -> tuple[OnlineAdapter, str]:
    """The adapter (attached to ``perceiver`` for ``stream``) and a sentence on what was resumed, if anything."""
    uncompile = getattr(perceiver, "uncompile", None)
    if callable(uncompile):
        uncompile()  # the adapter copies and hooks the eager modules (runtime.compile is CUDA-only)
    adapter = OnlineAdapter(perceiver.encoder, cfg, source_sha256=source_sha256_of(perceiver))
    note = "adaptation state not persisted (adaptation.state_dir is empty)"
    if cfg.state_dir and cfg.resume:
        note = adapter.resume().reason
    elif cfg.state_dir:
        note = "adaptation.resume is false: starting from the source weights"
    perceiver.attach_adapter(adapter, stream)
    if start:
        adapter.start()
    return adapter, note
