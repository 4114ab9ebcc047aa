"""BLAS threads: the block-scoped limit is process-wide, so blocks on two threads undo each other; pinning one
thread for the process is what a multi-threaded perceiver needs. Real OpenBLAS through threadpoolctl."""

from __future__ import annotations

import threading

import pytest

from perception.runtime import blas

threadpoolctl = pytest.importorskip("threadpoolctl")


def _set_blas_threads(n: int) -> None:
    threadpoolctl.threadpool_limits(limits=n, user_api="blas")


def test_overlapping_blocks_on_two_threads_undo_each_other_unless_pinned(monkeypatch):
    monkeypatch.setattr(blas, "_pinned", False)
    _set_blas_threads(2)
    try:
        inside, left = threading.Event(), threading.Event()
        seen: list[int | None] = []

        def other() -> None:
            with blas.single_threaded_blas():
                inside.set()
                left.wait(5)
                seen.append(blas.blas_threads())  # the first thread left its block before this one: 2 again

        thread = threading.Thread(target=other)
        with blas.single_threaded_blas():
            thread.start()
            inside.wait(5)
            seen.append(blas.blas_threads())  # both threads inside: 1
        left.set()
        thread.join()
        assert seen == [1, 2]
        assert blas.blas_threads() == 1  # and the second one's exit "restored" the 1 it found on entry

        assert blas.pin_single_threaded_blas() and blas.blas_threads() == 1
        with blas.single_threaded_blas():   # a no-op now
            assert blas.blas_threads() == 1
        assert blas.blas_threads() == 1
    finally:
        _set_blas_threads(1)
