"""The hand-over of parameter sets: inference reads whole versions only, never a mix, while the worker publishes."""

from __future__ import annotations

import threading

import torch

from perception.adaptation import VersionedParams


def test_reader_never_sees_a_torn_set_while_the_writer_publishes():
    shapes = [(64, 64), (256,), (3, 128), (1,)] * 8
    serving = {f"p{i}": torch.zeros(s) for i, s in enumerate(shapes)}
    versions = VersionedParams(serving)
    stop = threading.Event()
    published: list[int] = []

    def writer() -> None:
        v = 0
        while not stop.is_set() and v < 3000:
            v += 1
            # publish takes a complete set; the writer then scribbles over its own tensors (as training would)
            work = {n: torch.full(t.shape, float(v)) for n, t in serving.items()}
            published.append(versions.publish(work))
            for t in work.values():
                t.fill_(-1.0)

    thread = threading.Thread(target=writer)
    thread.start()
    reads, seen = 0, set()
    try:
        while thread.is_alive() or reads < 50:
            applied = versions.apply_to(serving)
            values = {float(t.min()) for t in serving.values()} | {float(t.max()) for t in serving.values()}
            assert len(values) == 1, f"torn read: values {sorted(values)[:5]}"
            value = values.pop()
            assert value == versions.applied_version            # the set is exactly the version it claims
            if applied is not None:
                seen.add(applied)
            reads += 1
    finally:
        stop.set()
        thread.join()
    assert published == list(range(1, len(published) + 1))
    assert len(seen) > 5 and reads > 50


def test_apply_is_a_no_op_until_a_newer_version_exists():
    serving = {"w": torch.zeros(3)}
    versions = VersionedParams(serving)
    assert versions.apply_to(serving) is None
    versions.publish({"w": torch.ones(3)})
    versions.publish({"w": torch.full((3,), 2.0)})
    assert versions.apply_to(serving) == 2 and torch.equal(serving["w"], torch.full((3,), 2.0))
    serving["w"].zero_()
    assert versions.apply_to(serving) is None and torch.equal(serving["w"], torch.zeros(3))


def test_attachments_arrive_with_their_set_in_order():
    versions = VersionedParams({"w": torch.zeros(3)})
    serving = {"w": torch.zeros(3)}
    got = []
    versions.publish({"w": torch.ones(3)}, attachment="rollback")
    versions.publish({"w": torch.full((3,), 2.0)})
    versions.publish({"w": torch.full((3,), 3.0)}, attachment="fallback")
    assert got == []                                    # nothing happens before a frame boundary
    assert versions.apply_to(serving, got.append) == 3  # skips to the newest set, delivers both, oldest first
    assert got == ["rollback", "fallback"] and torch.equal(serving["w"], torch.full((3,), 3.0))
    assert versions.apply_to(serving, got.append) is None and got == ["rollback", "fallback"]
