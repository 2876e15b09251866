"""A bounded queue of recognition work (identify, verify, enrol) served by a few worker threads, each owning one
`Recognizer` (a Recognizer is used by one thread at a time).

`submit(job)` never blocks: when `capacity` jobs already wait it raises `Busy`, which the API answers with 503 and
a `Retry-After` estimated from the recent service time, so a burst of clients is told to come back instead of
piling up requests until they time out. Jobs run in submission order.
"""
from __future__ import annotations

import logging
import math
import queue
import threading
import time
from concurrent.futures import Future
from typing import Any, Callable, List, Optional, Tuple

from ..errors import G2DError

log = logging.getLogger(__name__)

Job = Callable[[Any], Any]  # called with the worker's Recognizer


class Busy(G2DError):
    """The work queue is full; `retry_after` is a whole number of seconds worth waiting before trying again."""

    def __init__(self, message: str, retry_after: int) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class WorkQueue:
    """`capacity` waiting jobs at most, run by one thread per recognizer of `recognizers`."""

    def __init__(self, recognizers: List[Any], capacity: int) -> None:
        self.capacity = int(capacity)
        self._jobs: "queue.Queue[Optional[Tuple[Job, Future]]]" = queue.Queue(maxsize=self.capacity)
        self._service_s = 0.2  # running mean of a job's duration, for Retry-After
        self._lock = threading.Lock()
        self.done = 0
        self.rejected = 0
        self._threads = [threading.Thread(target=self._run, args=(rec,), name=f"g2d-serve-worker-{i}", daemon=True)
                         for i, rec in enumerate(recognizers)]
        for thread in self._threads:
            thread.start()

    @property
    def depth(self) -> int:
        """Jobs waiting (not counting those being run)."""
        return self._jobs.qsize()

    def submit(self, job: Job) -> "Future[Any]":
        """Queue `job` (called with a Recognizer on a worker thread); its Future has the result or the exception.
        Raises Busy at once when the queue is full."""
        future: "Future[Any]" = Future()
        try:
            self._jobs.put_nowait((job, future))
        except queue.Full:
            with self._lock:
                self.rejected += 1
                wait = self._service_s * (self.capacity + 1) / max(1, len(self._threads))
            raise Busy(f"the server is busy ({self.capacity} requests already wait for recognition); retry in a "
                       "moment", retry_after=max(1, math.ceil(wait))) from None
        return future

    def _run(self, recognizer: Any) -> None:
        while True:
            item = self._jobs.get()
            if item is None:
                return
            job, future = item
            if not future.set_running_or_notify_cancel():
                continue
            start = time.perf_counter()
            try:
                future.set_result(job(recognizer))
            except BaseException as exc:  # the caller sees it; the worker goes on
                future.set_exception(exc)
            with self._lock:
                self.done += 1
                self._service_s = 0.8 * self._service_s + 0.2 * (time.perf_counter() - start)

    def close(self, timeout: float = 10.0) -> None:
        """Cancel what still waits, let the running jobs finish, stop the workers."""
        while True:
            try:
                item = self._jobs.get_nowait()
            except queue.Empty:
                break
            if item is not None:
                item[1].cancel()
        for _ in self._threads:
            self._jobs.put(None)
        for thread in self._threads:
            thread.join(timeout)
