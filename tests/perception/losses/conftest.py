"""Run the loss tests single-threaded: their tensors are tiny (see ``one_torch_thread`` in tests/conftest.py)."""

from __future__ import annotations

import pytest


@pytest.fixture(autouse=True)
def single_thread(one_torch_thread) -> None:
    """Applies the shared one-thread fixture to every test here."""
