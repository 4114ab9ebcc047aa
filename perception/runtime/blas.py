"""One BLAS thread for the small numpy/scipy work of a frame (detection, tracking, monitoring).

numpy's OpenBLAS starts as many threads as there are cores and lets them spin while they wait for work. The
detector's matrices are small (4800 x 128 cell features, 128 x 128 covariances), so the threads gain nothing even
on an idle machine, and on a busy one the spinning threads wait for cores that other processes hold: measured on
the 2-core development machine under load, the discovery detector took 133 ms of CPU a frame with the default
threads and 19 ms with one (a 128 x 128 ``eigh`` alone went from 175 ms to 3 ms). ``single_threaded_blas()``
limits BLAS to one thread for a block and restores the previous setting afterwards (``threadpoolctl``), so code
outside the block (training, evaluation) keeps its own settings. Without ``threadpoolctl`` it does nothing.
"""

from __future__ import annotations

import contextlib
import threading
from typing import Any, ContextManager

_lock = threading.Lock()
_controller: Any = None
_unavailable = False


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
    controller = _get_controller()
    if controller is None:
        return contextlib.nullcontext()
    return controller.limit(limits=1, user_api="blas")


def blas_threads() -> int | None:
    """The number of threads of the first BLAS library loaded (None when unknown)."""
    controller = _get_controller()
    if controller is None:
        return None
    info = [lib for lib in controller.info() if lib.get("user_api") == "blas"]
    return int(info[0]["num_threads"]) if info else None
