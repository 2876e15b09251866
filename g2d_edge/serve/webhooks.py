"""Webhooks: a JSON POST to one URL per recognised person, at most once per track (or, for untracked faces, per
name) and cool-down. Deliveries run on their own thread from a bounded queue: a slow or dead receiver never holds up
recognition (events that do not fit are dropped and counted)."""
from __future__ import annotations

import json
import logging
import queue
import threading
import time
import urllib.error
import urllib.request
from typing import Any, Dict, Hashable, Optional

log = logging.getLogger(__name__)

#: Seconds a delivery may take before it counts as failed.
WEBHOOK_TIMEOUT_S = 5.0
#: Events waiting for delivery at most.
WEBHOOK_QUEUE = 100


class Webhooks:
    """`offer(key, event)` POSTs `event` to `url` unless `key` (source and track) was posted less than `cooldown_s`
    seconds ago. `metrics` (optional) counts deliveries by outcome: sent, failed, dropped."""

    def __init__(self, url: str, cooldown_s: float, metrics: Any = None) -> None:
        self.url = url
        self.cooldown_s = float(cooldown_s)
        self.metrics = metrics
        self._last: Dict[Hashable, float] = {}
        self._lock = threading.Lock()
        self._queue: "queue.Queue[Optional[Dict[str, Any]]]" = queue.Queue(maxsize=WEBHOOK_QUEUE)
        self._thread = threading.Thread(target=self._run, name="g2d-serve-webhooks", daemon=True)
        self._thread.start()

    def offer(self, key: Hashable, event: Dict[str, Any]) -> bool:
        """Queue `event` for delivery if `key` is out of its cool-down. True when queued."""
        now = time.monotonic()
        with self._lock:
            last = self._last.get(key)
            if last is not None and now - last < self.cooldown_s:
                return False
            self._last[key] = now
            if len(self._last) > 10_000:  # forget the oldest tracks
                for old in sorted(self._last, key=self._last.get)[:5_000]:
                    del self._last[old]
        try:
            self._queue.put_nowait(event)
        except queue.Full:
            self._count("dropped")
            return False
        return True

    def _count(self, outcome: str) -> None:
        if self.metrics is not None:
            self.metrics.webhooks.labels(outcome).inc()

    def _run(self) -> None:
        while True:
            event = self._queue.get()
            if event is None:
                return
            request = urllib.request.Request(self.url, data=json.dumps(event).encode("utf-8"), method="POST",
                                             headers={"Content-Type": "application/json",
                                                      "User-Agent": "g2d-serve"})
            try:
                with urllib.request.urlopen(request, timeout=WEBHOOK_TIMEOUT_S) as response:  # noqa: S310 (http/s)
                    response.read(1024)
                self._count("sent")
            except (urllib.error.URLError, OSError, ValueError) as exc:
                log.warning("webhook %s failed: %s", self.url, exc)
                self._count("failed")

    def close(self, timeout: float = WEBHOOK_TIMEOUT_S) -> None:
        """Deliver what is queued (within `timeout`), then stop."""
        try:
            self._queue.put(None, timeout=timeout)
        except queue.Full:
            return
        self._thread.join(timeout)
