import threading
import time

import pytest

from perception.runtime.latest import LatestSlot, SlotClosed


def test_put_replaces_and_counts_a_drop():
    slot: LatestSlot[int] = LatestSlot()
    assert slot.put(1) is False
    assert slot.put(2) is True  # 1 was never taken
    assert slot.get(timeout=0) == 2
    assert slot.get(timeout=0.01) is None
    assert slot.counts() == {"put": 2, "taken": 1, "dropped": 1, "pending": 0}


def test_get_times_out_and_close_wakes_the_consumer():
    slot: LatestSlot[int] = LatestSlot()
    started = time.monotonic()
    assert slot.get(timeout=0.05) is None
    assert time.monotonic() - started >= 0.04
    woke = []
    consumer = threading.Thread(target=lambda: woke.append(slot.get(timeout=10.0)))
    consumer.start()
    time.sleep(0.05)
    slot.close()
    consumer.join(2.0)
    assert not consumer.is_alive() and woke == [None]
    with pytest.raises(SlotClosed):
        slot.put(3)


def test_an_item_put_before_close_is_still_delivered():
    slot: LatestSlot[str] = LatestSlot()
    slot.put("last")
    slot.close()
    assert slot.get(timeout=0) == "last"
    assert slot.get(timeout=0) is None


def test_fast_producer_slow_consumer_counts_are_exact():
    slot: LatestSlot[int] = LatestSlot()
    n_items = 3000
    received: list[int] = []
    snapshots: list[dict] = []

    def consume() -> None:
        while True:
            item = slot.get(timeout=1.0)
            if item is None:
                return
            received.append(item)
            snapshots.append(slot.counts())
            time.sleep(0.001)  # slower than the producer

    consumer = threading.Thread(target=consume)
    consumer.start()
    for i in range(n_items):
        slot.put(i)
        if i % 100 == 0:
            time.sleep(0.002)
    slot.close()
    consumer.join(10.0)
    assert not consumer.is_alive()
    c = slot.counts()
    assert c["put"] == n_items
    assert c["put"] == c["taken"] + c["dropped"] + c["pending"]
    assert c["pending"] == 0 and c["taken"] == len(received)
    assert c["dropped"] > 0 and len(received) < n_items  # the consumer really was slower
    assert received == sorted(received) and len(set(received)) == len(received)  # newest only, never repeats
    assert received[-1] == n_items - 1  # the last item is never lost
    for s in snapshots:  # the invariant holds at every moment, not only at the end
        assert s["put"] == s["taken"] + s["dropped"] + s["pending"]


def test_wait_empty_gives_lock_step_hand_off_without_drops():
    slot: LatestSlot[int] = LatestSlot()
    received: list[int] = []

    def consume() -> None:
        while (item := slot.get(timeout=1.0)) is not None:
            time.sleep(0.002)
            received.append(item)

    consumer = threading.Thread(target=consume)
    consumer.start()
    for i in range(50):
        assert slot.wait_empty(timeout=5.0)
        slot.put(i)
    slot.close()
    consumer.join(5.0)
    assert received == list(range(50)) and slot.dropped == 0
