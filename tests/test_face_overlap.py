"""The face pipeline's overlap helpers (harness.faces.overlap): read-ahead and the bounded pool."""

import threading
import time

import pytest

from harness.faces.overlap import BoundedPool, read_ahead


def test_read_ahead_yields_every_item_in_order():
    assert list(read_ahead(iter(range(50)), depth=3)) == list(range(50))


def test_read_ahead_raises_the_producers_error_where_it_is_consumed():
    def items():
        yield 1
        raise ValueError("frame 2 is corrupt")

    consumed = []
    with pytest.raises(ValueError, match="frame 2 is corrupt"):
        for item in read_ahead(items()):
            consumed.append(item)
    assert consumed == [1]


def test_a_consumer_that_stops_early_stops_and_closes_the_producer():
    closed = threading.Event()

    def items():
        try:
            yield from range(10**6)
        finally:
            closed.set()

    ahead = read_ahead(items(), depth=2)
    assert [next(ahead) for _ in range(3)] == [0, 1, 2]
    ahead.close()
    assert closed.wait(5)
    assert not [t for t in threading.enumerate() if t.name == "read-ahead"]


def test_the_pool_holds_at_most_its_pending_jobs_and_raises_their_errors():
    running, most = [], [0]
    lock = threading.Lock()

    def job(index: int) -> None:
        with lock:
            running.append(index)
            most[0] = max(most[0], len(running))
        time.sleep(0.01)
        with lock:
            running.remove(index)
        if index == 7:
            raise OSError("disk full")

    pool = BoundedPool(threads=4, pending=2)
    with pytest.raises(OSError, match="disk full"):
        for index in range(10):
            pool.submit(job, index)
        pool.wait()
    pool.close()
    assert most[0] <= 2
