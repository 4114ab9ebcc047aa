"""``GcPauses`` counts and times real collections of the interpreter's garbage collector."""

from __future__ import annotations

import gc

from perception.runtime.gc_pauses import GcPauses


def test_counts_full_and_young_collections_and_stops_when_removed():
    enabled = gc.isenabled()
    gc.disable()                         # only the collections the test asks for (none started by allocations)
    pauses = GcPauses().install()
    try:
        assert pauses.values()["gc_collections"] == 0
        gc.collect()                     # a full collection (generation 2)
        gc.collect(0)                    # a young one
        values = pauses.values()
        assert values["gc_collections"] == 2 and values["gc_full_collections"] == 1
        assert values["gc_max_pause_ms"] > 0.0 and values["gc_pause_ms_total"] >= values["gc_max_pause_ms"]
    finally:
        pauses.remove()
        if enabled:
            gc.enable()
    gc.collect()
    assert pauses.values()["gc_collections"] == 2 and pauses._callback not in gc.callbacks
