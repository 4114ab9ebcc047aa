"""keep_frame_buffers: glibc's mmap and trim thresholds set with mallopt when the environment does not set them."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

PROBE = """
import json, os, sys
import numpy as np
from perception.runtime.allocator import keep_frame_buffers, MMAP_THRESHOLD

applied = keep_frame_buffers()
# a freed 4 MB block is kept in the heap and reused, so its pages are not faulted in again: count the minor faults of
# touching a fresh 4 MB array 50 times
import resource
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(50):
    a = np.ones(4 * 1024 * 1024, np.uint8)
    del a
faults = resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before
print(json.dumps({"applied": applied, "again": keep_frame_buffers(), "faults": faults}))
"""


def _probe(env: dict[str, str]) -> dict:
    import json

    result = subprocess.run([sys.executable, "-c", PROBE], env=env, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout.strip().splitlines()[-1])


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's mallopt")
def test_thresholds_set_when_the_environment_has_none_and_buffers_are_reused():
    env = {k: v for k, v in os.environ.items() if not k.startswith("MALLOC_")}
    tuned = _probe(env)
    assert tuned["applied"] == {"MALLOC_MMAP_THRESHOLD_": 64 * 1024 * 1024, "MALLOC_TRIM_THRESHOLD_": 256 * 1024 * 1024}
    assert tuned["again"] == tuned["applied"]
    untuned = _probe({**env, "MALLOC_MMAP_THRESHOLD_": "131072"})  # the user's value wins: nothing set for it
    assert untuned["applied"] == {"MALLOC_TRIM_THRESHOLD_": 256 * 1024 * 1024}
    # 50 fresh 4 MB arrays: about 1,000 page faults each through mmap, a few in total from the reused heap block
    assert untuned["faults"] > 20_000 and tuned["faults"] < 0.1 * untuned["faults"]
