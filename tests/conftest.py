"""Test-wide settings: ROS discovery stays on this machine, the graph's DDS transport settings (the package's Fast DDS
profile, as in every graph process: ``perception.runtime.processes.graph_environment``), and a DDS domain per test
process so parallel runs do not see each other."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from perception.runtime.device import torch_threads
from perception.runtime.processes import graph_environment

os.environ.setdefault("ROS_AUTOMATIC_DISCOVERY_RANGE", "LOCALHOST")
os.environ.update({key: value for key, value in graph_environment(base=os.environ).items()
                   if key.startswith("FASTDDS_")})
os.environ.setdefault("RCUTILS_COLORIZED_OUTPUT", "0")

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = Path(os.environ.get("DUALSTREAM_SHARED_DATA", REPO.parent / "shared" / "data"))


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """``../shared/data``; tests that use it skip when it is absent."""
    if not SHARED_DATA.is_dir():
        pytest.skip(f"shared data not found at {SHARED_DATA}")
    return SHARED_DATA


@pytest.fixture
def one_torch_thread():
    """One torch intra-op thread for the test: small tensors only contend on a shared 2-core machine (a 60-step toy
    optimisation took 14 s with 2 threads under load, 0.15 s with one). Restores the previous setting."""
    with torch_threads(1):
        yield
