"""Shared timing helper of the benchmark scripts (run as `python bench/bench_*.py`)."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable


def median_seconds(
    fn: Callable[[], object], warmup: int, repeats: int, clock: Callable[[], float] = time.perf_counter
) -> float:
    """Median time of ``repeats`` calls after ``warmup`` untimed ones: wall time by default;
    ``clock=time.process_time`` gives this process's CPU time (steadier on a shared machine)."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        start = clock()
        fn()
        times.append(clock() - start)
    return statistics.median(times)
