"""The batcher both push exporters share: bounded queue with exact drop counts, retries
with backoff keep the data, permanent failures drop it, batches stay per key."""

from __future__ import annotations

import threading
import time

from kernelscope.export.batching import Batcher, PermanentError, RetryableError


class FlakyDestination:
    def __init__(self):
        self.up = threading.Event()
        self.got: list[tuple[str, list]] = []
        self.attempts = 0
        self.permanent = 0

    def send(self, key, items):
        self.attempts += 1
        if self.permanent:
            self.permanent -= 1
            raise PermanentError("bad batch")
        if not self.up.is_set():
            raise RetryableError("down")
        self.got.append((key, list(items)))


def wait(pred, timeout=5.0):
    deadline = time.monotonic() + timeout
    while not pred():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.01)
    return True


def test_bounded_while_down_then_delivered_in_order():
    d = FlakyDestination()
    b = Batcher("t", d.send, batch_size=4, max_queue=10, interval=0.05,
                retry_initial=0.01, retry_max=0.05)
    accepted = sum(b.put("a", list(range(i * 6, i * 6 + 6))) for i in range(5))  # 30 written
    assert accepted == 10
    assert wait(lambda: b.stats()["retries"] >= 3)
    st = b.stats()
    assert (st["queued"], st["dropped"], st["sent"]) == (10, 20, 0)
    d.up.set()
    assert wait(lambda: b.stats()["sent"] == 10)
    b.close()
    assert [x for _, items in d.got for x in items] == list(range(10))
    assert all(len(items) <= 4 for _, items in d.got)
    # backoff: far fewer attempts than a busy loop would make
    assert d.attempts < 200


def test_batches_are_per_key_and_flush_sends_partial_batches():
    d = FlakyDestination()
    d.up.set()
    b = Batcher("t", d.send, batch_size=100, max_queue=1000, interval=60)
    b.put("logs", [1, 2])
    b.put("traces", ["x"])
    b.put("logs", [3])
    assert b.flush(timeout=5, force=True)
    b.close()
    assert sorted(d.got) == [("logs", [1, 2, 3]), ("traces", ["x"])]


def test_permanent_failure_drops_batch_and_counts_it():
    d = FlakyDestination()
    d.up.set()
    d.permanent = 1
    b = Batcher("t", d.send, batch_size=3, max_queue=100, interval=60)
    b.put("k", [1, 2, 3, 4])
    b.flush(timeout=5, force=True)
    b.flush(timeout=5, force=True)
    b.close()
    st = b.stats()
    assert (st["rejected"], st["sent"], st["retries"], st["errors"]) == (3, 1, 0, 1)
    assert d.got == [("k", [4])]


def test_close_counts_undelivered_as_dropped():
    d = FlakyDestination()
    b = Batcher("t", d.send, batch_size=10, max_queue=100, interval=60,
                retry_initial=0.01, retry_max=0.02)
    b.put("k", list(range(7)))
    b.close(timeout=0.2)
    st = b.stats()
    assert (st["dropped"], st["queued"], st["sent"]) == (7, 0, 0)
    assert b.put("k", [1]) == 0 and b.stats()["dropped"] == 8


def test_plain_flush_does_not_wait_and_respects_interval():
    d = FlakyDestination()
    d.up.set()
    slow = threading.Event()

    def send(key, items):
        slow.wait(5)                             # a slow destination
        d.send(key, items)

    b = Batcher("t", send, batch_size=100, max_queue=1000, interval=60)
    b.put("k", [1])
    t0 = time.monotonic()
    assert not b.flush()                         # nothing sent yet: asks for a send...
    assert time.monotonic() - t0 < 0.5           # ...without waiting for it
    slow.set()
    assert wait(lambda: b.stats()["sent"] == 1)
    b.put("k", [2])
    assert not b.flush()                         # sent a moment ago: left for later
    time.sleep(0.2)
    assert b.stats()["queued"] == 1
    assert b.flush(timeout=5, force=True)        # force: sends now and waits
    b.close()
    assert d.got == [("k", [1]), ("k", [2])]
