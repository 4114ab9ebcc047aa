"""Online adaptation: ``OnlineAdapter`` (buffer, background updates, swap at frame boundaries), its guard
(``AdaptationGuard``: collapse, drift, loss trend -> rollback / fallback to source) and crash-safe persistence."""

from perception.adaptation.adapter import OnlineAdapter, ResumeResult, StepResult
from perception.adaptation.attach import attach_online_adapter
from perception.adaptation.buffer import FrameBuffer
from perception.adaptation.config import AdaptationConfig
from perception.adaptation.guard import (ADAPTING, DISABLED, FALLBACK_SOURCE, ROLLED_BACK, AdaptationGuard,
                                         HealthSample, Verdict)
from perception.adaptation.params import select_parameters, state_hash
from perception.adaptation.persistence import StateMismatch, load_state, save_state
from perception.adaptation.swap import VersionedParams

__all__ = [
    "ADAPTING", "DISABLED", "FALLBACK_SOURCE", "ROLLED_BACK", "AdaptationConfig", "AdaptationGuard", "FrameBuffer",
    "HealthSample", "OnlineAdapter", "ResumeResult", "StateMismatch", "StepResult", "Verdict", "VersionedParams",
    "attach_online_adapter", "load_state", "save_state", "select_parameters", "state_hash",
]
