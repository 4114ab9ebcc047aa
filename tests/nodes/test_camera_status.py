"""The camera node's diagnostic levels for each source state (the pure mapping; the node test covers DDS)."""

from __future__ import annotations

from dualstream_perception.camera_status import source_diagnostic


def test_a_reconnecting_camera_is_a_warning_with_its_outage():
    level, message, values = source_diagnostic(
        "streaming", 40, {"state": "reconnecting", "down_s": 1.25, "attempt": 2, "next_delay_s": 1.0,
                          "reconnects": 0})
    assert level == "WARN" and message == "camera down for 1.2 s, reconnecting (attempt 2, next in 1.00 s)"
    assert values["state"] == "reconnecting" and values["published"] == 40 and values["source_down_s"] == 1.25


def test_levels_of_the_other_states():
    assert source_diagnostic("streaming", 3, {"state": "streaming", "down_s": 0.0})[:2] == ("OK", "streaming")
    assert source_diagnostic("ended", 15)[:2] == ("OK", "source ended after 15 frames")
    level, message, values = source_diagnostic("failed", 0, None, "cannot open source 'x': gone")
    assert level == "ERROR" and message == "source failed: cannot open source 'x': gone" and values["error"]
    assert source_diagnostic("opening", 0)[0] == "OK"
