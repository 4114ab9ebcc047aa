"""glibc's allocator thresholds for a process that allocates a few megabytes per frame.

By default glibc serves every allocation above 128 KB-32 MB (a threshold it moves itself) with a fresh ``mmap`` and
returns it on free, so each frame's activations are new pages that fault in on first touch, and idle heap is trimmed
back to the system. ``MALLOC_MMAP_THRESHOLD_=67108864 MALLOC_TRIM_THRESHOLD_=268435456`` keep those blocks in the heap
for reuse; the graph's processes get them in their environment (``perception.runtime.processes``), and
``keep_frame_buffers()`` applies the same values with ``mallopt`` in a process started without them (``dualstream
run``, the bench's in-process parts, an embedding application). Measured on the 2-core CPU: the local stream at
640x480 (bf16, one thread) 10.2 ms without, 6.2 ms with.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging
import os

log = logging.getLogger(__name__)

M_TRIM_THRESHOLD = -1  # glibc <malloc.h>
M_MMAP_THRESHOLD = -3
MMAP_THRESHOLD = 64 * 1024 * 1024
TRIM_THRESHOLD = 256 * 1024 * 1024
_applied: dict[str, int] | None = None


def keep_frame_buffers() -> dict[str, int]:
    """Set the thresholds this process's environment does not set already (glibc only; elsewhere nothing). Returns
    what was set (``{"MALLOC_MMAP_THRESHOLD_": bytes, ...}``); a second call changes nothing and returns the same."""
    global _applied
    if _applied is not None:
        return dict(_applied)
    applied: dict[str, int] = {}
    path = ctypes.util.find_library("c")
    try:
        libc = ctypes.CDLL(path) if path else None
    except OSError:
        libc = None
    mallopt = getattr(libc, "mallopt", None) if libc is not None else None
    if mallopt is not None and hasattr(libc, "gnu_get_libc_version"):
        for env, option, value in (("MALLOC_MMAP_THRESHOLD_", M_MMAP_THRESHOLD, MMAP_THRESHOLD),
                                   ("MALLOC_TRIM_THRESHOLD_", M_TRIM_THRESHOLD, TRIM_THRESHOLD)):
            if env not in os.environ and mallopt(ctypes.c_int(option), ctypes.c_int(value)) == 1:
                applied[env] = value
        if applied:
            log.info("allocator: %s set with mallopt (keeps per-frame buffers in the heap)", ", ".join(applied))
    _applied = applied
    return dict(applied)
