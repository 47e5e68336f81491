"""The face pipeline's CPU work beside the detector: a video decoded ahead in a thread, crops cut and written in a
pool of threads. PyAV decodes, and PIL transforms and encodes, without the interpreter lock, so on a GPU machine
they run on otherwise idle cores while the main thread feeds the detector (on an H200 the single-threaded path
reached 137 frames/s against 1,487 for the detector's forward: docs/benchmarks.md)."""

import queue
import threading
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from typing import TypeVar

Item = TypeVar("Item")
_END = object()
_POLL_S = 0.1  # how often a blocked producer looks whether the consumer has gone


def read_ahead(items: Iterator[Item], depth: int = 2) -> Iterator[Item]:
    """``items``, produced in a background thread up to ``depth`` ahead of the consumer; an exception raised while
    producing is raised here, and a consumer that stops early stops (and closes) the producer."""
    ready: queue.Queue = queue.Queue(maxsize=depth)
    stop = threading.Event()

    def offer(entry: tuple) -> bool:
        while not stop.is_set():
            try:
                ready.put(entry, timeout=_POLL_S)
                return True
            except queue.Full:
                continue
        return False

    def produce() -> None:
        try:
            for item in items:
                if not offer((item, None)):
                    return
            offer((_END, None))
        except BaseException as error:  # handed to the consumer, raised there
            offer((_END, error))
        finally:
            close = getattr(items, "close", None)
            if close is not None:
                close()

    producer = threading.Thread(target=produce, name="read-ahead", daemon=True)
    producer.start()
    try:
        while True:
            item, error = ready.get()
            if item is _END:
                if error is not None:
                    raise error
                return
            yield item
    finally:
        stop.set()
        producer.join()


class BoundedPool:
    """A thread pool that holds at most ``pending`` unfinished jobs (each keeps its frame, and the batch array that
    frame is a view of, alive): submitting beyond waits for the oldest. A job's exception is raised at a later
    :meth:`submit` or at :meth:`wait`."""

    def __init__(self, threads: int, pending: int) -> None:
        self._pool = ThreadPoolExecutor(max(1, threads), thread_name_prefix="crops")
        self._pending = max(1, pending)
        self._futures: deque[Future] = deque()

    def submit(self, job: Callable, *args) -> None:
        while len(self._futures) >= self._pending:
            self._futures.popleft().result()
        self._futures.append(self._pool.submit(job, *args))

    def wait(self) -> None:
        """Every submitted job finished; the first failure raised."""
        while self._futures:
            self._futures.popleft().result()

    def close(self) -> None:
        """Drop the jobs not started, wait for the running ones (so none writes after its folder is removed)."""
        for future in self._futures:
            future.cancel()
        self._futures.clear()
        self._pool.shutdown(wait=True)
