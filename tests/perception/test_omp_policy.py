"""Importing the library sets OpenMP's wait policy to PASSIVE unless the environment chose one (it must be set
before torch loads OpenMP, so a fresh interpreter checks it)."""

from __future__ import annotations

import os
import subprocess
import sys


def _policy(env: dict, package: str = "perception") -> str:
    code = f"import {package}, os, torch; print(os.environ['OMP_WAIT_POLICY'])"
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True, timeout=120)
    return out.stdout.strip()


def test_passive_by_default_and_an_explicit_choice_is_kept():
    env = {k: v for k, v in os.environ.items() if k != "OMP_WAIT_POLICY"}
    assert _policy(env) == "PASSIVE"
    assert _policy(env, "dualstream_perception") == "PASSIVE"  # the nodes' package, imported before torch
    assert _policy({**env, "OMP_WAIT_POLICY": "ACTIVE"}) == "ACTIVE"
