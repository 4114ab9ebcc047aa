"""Run the loss tests single-threaded: their tensors are tiny, and on a shared 2-core machine intra-op threads
only contend (a 60-step toy optimisation took 14 s with 2 threads under load, 0.15 s with one)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import torch


@pytest.fixture(autouse=True)
def single_thread() -> Iterator[None]:
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)
