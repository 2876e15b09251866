"""The fused templates a "mean" search of a Milvus gallery scores its candidates with, cached for a few seconds.

A fused search (`MilvusGallery.search(..., fusion="mean")`) finds its candidates with the server's grouped search,
always fresh, and then needs each candidate's fused template: the renormalised mean of its templates (of its clean
ones, for a clean query). Reading them is a filtered query, which costs more than the search itself (Milvus Lite:
11 ms at 10,000 identities, growing with the collection), while a camera asks for the same few people frame after
frame. So each fused template is kept for `ttl_s` seconds (`MilvusGalleryOptions.fused_cache_s`); an edit made
through the same gallery object forgets its names at once, an edit made by another box is seen within `ttl_s`.
"""
from __future__ import annotations

import contextlib
import threading
import time
from typing import Callable, Dict, Iterator, List, Optional, Sequence, Tuple

import numpy as np

#: Most fused templates kept; past it the expired ones go, then all.
MAX_ENTRIES = 50_000


class FusedTemplateCache:
    """{(name, filter): fused template} for `ttl_s` seconds (0: every search reads them afresh). Thread-safe."""

    def __init__(self, ttl_s: float) -> None:
        self.ttl_s = float(ttl_s)
        self._entries: Dict[Tuple[str, str], Tuple[float, np.ndarray]] = {}
        self._lock = threading.Lock()

    def get(self, names: Sequence[str], expr: str,
            read: Callable[[List[str]], Dict[str, np.ndarray]]) -> Dict[str, np.ndarray]:
        """The fused templates of `names` under the filter `expr`: kept ones younger than `ttl_s`, the others
        `read` (a name with no template under `expr` is absent from the result)."""
        now = time.monotonic()
        with self._lock:
            kept = {n: self._entries[(n, expr)] for n in names if (n, expr) in self._entries}
        found = {n: v for n, (t, v) in kept.items() if now - t < self.ttl_s}
        missing = [n for n in names if n not in found]
        if missing:
            fresh = read(missing)
            found.update(fresh)
            if self.ttl_s > 0:
                self._store(fresh, expr, now)
        return found

    @contextlib.contextmanager
    def editing(self, names: Optional[Sequence[str]]) -> Iterator[None]:
        """Around an edit of `names` (None: of every identity) through this gallery: their kept fused templates are
        dropped before and after it (a search running meanwhile may have read the old ones), whether it succeeds or
        fails."""
        self.forget(names)
        try:
            yield
        finally:
            self.forget(names)

    def forget(self, names: Optional[Sequence[str]]) -> None:
        """Drop every kept fused template of `names` (None: all of them; they were edited through this gallery)."""
        with self._lock:
            if names is None:
                self._entries.clear()
                return
            gone = set(names)
            for key in [k for k in self._entries if k[0] in gone]:
                del self._entries[key]

    def _store(self, fresh: Dict[str, np.ndarray], expr: str, now: float) -> None:
        with self._lock:
            if len(self._entries) + len(fresh) > MAX_ENTRIES:
                self._entries = {k: v for k, v in self._entries.items() if now - v[0] < self.ttl_s}
                if len(self._entries) + len(fresh) > MAX_ENTRIES:
                    self._entries.clear()
            for name, vector in fresh.items():
                self._entries[(name, expr)] = (now, vector)
