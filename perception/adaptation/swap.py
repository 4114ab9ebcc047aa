"""``VersionedParams``: the hand-over of complete parameter sets from the adaptation worker to inference.

The worker never touches the serving model. It trains a private copy and ``publish``es a complete, freshly cloned
set with the next version number; inference calls ``apply_to`` at a frame boundary, which takes the newest set
(a pointer read under the lock) and copies it into the serving parameters if it is newer than what they hold.
A published set is never written again, so the copy outside the lock cannot see a half-updated set, and inference
never waits for an update: the lock is held only for the pointer swap. A publication may carry an ``attachment``
(the adapter's BN-statistics command on a rollback, fallback or reset) that ``apply_to`` hands to its callback at
the same frame boundary as the set it came with, so the weights and the statistics change together.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping
from typing import Any

import torch

from perception.adaptation.params import ParamSet, copy_into


class VersionedParams:
    """``publish(values) -> version``; ``latest() -> (version, set)``; ``apply_to(params) -> version or None``."""

    def __init__(self, initial: Mapping[str, torch.Tensor]) -> None:
        self._lock = threading.Lock()
        self._version = 0
        self._set: ParamSet = {n: t.detach().clone() for n, t in initial.items()}
        self._attachments: dict[int, Any] = {}
        self.applied_version = 0

    @property
    def version(self) -> int:
        with self._lock:
            return self._version

    def publish(self, values: Mapping[str, torch.Tensor], clone: bool = True, attachment: Any = None) -> int:
        """Make ``values`` the newest set (cloned unless the caller hands over tensors it never writes again);
        ``attachment`` (not None) reaches ``apply_to``'s callback with this set, or with a later one that skips it."""
        new = {n: (t.detach().clone() if clone else t.detach()) for n, t in values.items()}
        if new.keys() != self._set.keys():
            raise KeyError("VersionedParams.publish: the parameter names differ from the first set")
        with self._lock:
            self._version += 1
            self._set = new
            if attachment is not None:
                self._attachments[self._version] = attachment
            return self._version

    def latest(self) -> tuple[int, ParamSet]:
        with self._lock:
            return self._version, self._set

    def apply_to(self, params: Mapping[str, torch.Tensor],
                 on_attachment: Callable[[Any], None] | None = None) -> int | None:
        """Copy the newest set into ``params`` when it is newer than the one they hold; the version applied.
        The attachments published since the last call go to ``on_attachment``, oldest first."""
        with self._lock:
            version, values = self._version, self._set
            attached = [self._attachments.pop(v) for v in sorted(self._attachments) if v <= version]
        if version == self.applied_version:
            return None
        copy_into(params, values)
        self.applied_version = version
        if on_attachment is not None:
            for item in attached:
                on_attachment(item)
        return version
