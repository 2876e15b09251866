"""How the benchmarks time a call: untimed warm-up calls, then the median of timed ones (several calls: in turns)."""
from __future__ import annotations

import statistics
import time
from typing import Any, Callable, Dict, List


def median_seconds(fn: Callable[[], Any], warmup: int, repeats: int) -> float:
    """Median wall time of ``fn`` over ``repeats`` calls after ``warmup`` untimed calls."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def interleaved_median_seconds(fns: Dict[str, Callable[[], Any]], warmup: int, repeats: int) -> Dict[str, float]:
    """Median wall time of each of ``fns`` over ``repeats`` calls, the functions taking turns call by call (after
    ``warmup`` untimed rounds), so that a change in the machine's load during the measurement hits them alike."""
    for _ in range(warmup):
        for fn in fns.values():
            fn()
    times: Dict[str, List[float]] = {name: [] for name in fns}
    for _ in range(repeats):
        for name, fn in fns.items():
            start = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - start)
    return {name: statistics.median(values) for name, values in times.items()}
