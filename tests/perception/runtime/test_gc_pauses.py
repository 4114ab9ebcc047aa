"""``GcPauses`` counts and times real collections of the interpreter's garbage collector."""

from __future__ import annotations

import gc

from perception.runtime.gc_pauses import GcPauses, freeze_start_up


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


def test_long_pauses_are_reported_and_start_up_objects_are_frozen():
    enabled = gc.isenabled()
    gc.disable()
    messages: list[str] = []
    pauses = GcPauses(warn_ms=0.0, warn=messages.append).install()
    quiet = GcPauses(warn_ms=60_000.0, warn=messages.append).install()  # no collection lasts a minute
    try:
        gc.collect()
        assert len(messages) == 1 and messages[0].startswith("garbage collection of generation 2")
        assert "held every thread for" in messages[0]
        kept = [[i] for i in range(1000)]  # containers alive at "start-up"
        frozen = freeze_start_up()
        assert frozen >= len(kept) and gc.get_freeze_count() == frozen
        assert not any(obj is kept for obj in gc.get_objects())  # frozen objects are no longer tracked by generation
    finally:
        pauses.remove()
        quiet.remove()
        gc.unfreeze()
        if enabled:
            gc.enable()
