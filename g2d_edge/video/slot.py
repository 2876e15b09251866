"""A one-item hand-off between a producer thread and a consumer: the newest item wins.

Used by `capture.Capture` (camera thread -> application) and by the recognizer's stream mode (application ->
worker thread). A bounded buffer of one means no lag can build up: a producer faster than its consumer replaces the
waiting item (counted in `dropped`) instead of queueing it. `put_wait` is the lossless variant for offline work.
"""
from __future__ import annotations

import threading
import time
from typing import Generic, Optional, TypeVar

T = TypeVar("T")


class LatestSlot(Generic[T]):
    """Holds at most one item. Counters: `put_count`, `taken`, `dropped` (items replaced before anyone took them)."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._item: Optional[T] = None
        self._full = False
        self._closed = False
        self.put_count = 0
        self.taken = 0
        self.dropped = 0

    @property
    def closed(self) -> bool:
        """True once `close()` was called (items already in the slot can still be taken)."""
        return self._closed

    def put(self, item: T) -> bool:
        """Store `item`, replacing (dropping) any item not yet taken. Returns True if one was dropped."""
        with self._cond:
            dropped = self._full
            if dropped:
                self.dropped += 1
            self._item, self._full = item, True
            self.put_count += 1
            self._cond.notify_all()
            return dropped

    def put_wait(self, item: T, timeout: Optional[float] = None) -> bool:
        """Store `item` once the slot is empty (nothing is dropped). Returns False on timeout or when closed."""
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._cond:
            while self._full and not self._closed:
                remaining = None if deadline is None else deadline - time.monotonic()
                if remaining is not None and remaining <= 0:
                    return False
                self._cond.wait(remaining)
            if self._closed:
                return False
            self._item, self._full = item, True
            self.put_count += 1
            self._cond.notify_all()
            return True

    def get(self, timeout: Optional[float] = None) -> Optional[T]:
        """Take the item, waiting up to `timeout` seconds (None: forever). Returns None on timeout or when closed
        and empty."""
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._cond:
            while not self._full and not self._closed:
                remaining = None if deadline is None else deadline - time.monotonic()
                if remaining is not None and remaining <= 0:
                    return None
                self._cond.wait(remaining)
            if not self._full:
                return None
            item, self._item, self._full = self._item, None, False
            self.taken += 1
            self._cond.notify_all()
            return item

    def close(self) -> None:
        """Wake every waiter; later `put_wait` calls fail, `get` still returns an item already stored."""
        with self._cond:
            self._closed = True
            self._cond.notify_all()
