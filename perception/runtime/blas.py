"""One BLAS thread for the small numpy/scipy work of a frame (detection, tracking, monitoring).

numpy's OpenBLAS starts as many threads as there are cores and lets them spin while they wait for work. The
detector's matrices are small (4800 x 128 cell features, 128 x 128 covariances), so the threads gain nothing even
on an idle machine, and on a busy one the spinning threads wait for cores that other processes hold: measured on
the 2-core development machine under load, the discovery detector took 133 ms of CPU a frame with the default
threads and 19 ms with one (a 128 x 128 ``eigh`` alone went from 175 ms to 3 ms). ``single_threaded_blas()``
limits BLAS to one thread for a block and restores the previous setting afterwards (``threadpoolctl``), so code
outside the block (training, evaluation) keeps its own settings. Without ``threadpoolctl`` it does nothing.

The limit is process-wide, not per thread: when two threads use such blocks at once (the perceiver's detector
preparation, its second half and the node's monitor each run on their own thread), the first to leave restores the
default while the other is still inside, and its products run on spinning threads again. ``pin_single_threaded_blas``
sets one BLAS thread for the rest of the process instead (``Perceiver`` does, since its work runs on several threads);
``single_threaded_blas`` is then a no-op.
"""

from __future__ import annotations

import contextlib
import threading
from typing import Any, ContextManager

_lock = threading.Lock()
_controller: Any = None
_unavailable = False
_pinned = False


def _get_controller() -> Any:
    global _controller, _unavailable
    with _lock:
        if _controller is None and not _unavailable:
            try:
                from threadpoolctl import ThreadpoolController  # noqa: PLC0415
            except ImportError:
                _unavailable = True
                return None
            _controller = ThreadpoolController()
        return _controller


def single_threaded_blas() -> ContextManager:
    """A context in which numpy's and scipy's BLAS/LAPACK use one thread (a no-op without ``threadpoolctl``)."""
    if _pinned:  # called a few times a frame: no controller lookup then
        return contextlib.nullcontext()
    controller = _get_controller()
    if controller is None:
        return contextlib.nullcontext()
    return controller.limit(limits=1, user_api="blas")


def pin_single_threaded_blas() -> bool:
    """One BLAS thread for every BLAS library loaded now, for the rest of the process (module docstring); False
    without ``threadpoolctl``."""
    global _pinned
    controller = _get_controller()
    if controller is None:
        return False
    with _lock:
        controller.limit(limits=1, user_api="blas")  # not used as a context: nothing restores the old limits
        _pinned = True
    return True


def blas_threads() -> int | None:
    """The number of threads of the first BLAS library loaded (None when unknown)."""
    controller = _get_controller()
    if controller is None:
        return None
    info = [lib for lib in controller.info() if lib.get("user_api") == "blas"]
    return int(info[0]["num_threads"]) if info else None
