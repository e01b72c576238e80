"""The machine's speed at the moment: a fixed CPU-bound Python loop, timed. On the 2-core machine
these benchmarks were written on it takes about 1.4 s when the machine runs at its nominal speed
and up to 3.5 s when it is loaded by others (its speed changes within minutes, with no steal time
shown): time it before and after a run and report it beside the run's figures, so that two runs
are compared only where the machine ran at the same speed."""

from __future__ import annotations

import time

#: the loop timed: ``sum(i * i for i in range(LOOP_N))``
LOOP_N = 2 * 10**7


def loop_seconds() -> float:
    """Wall seconds of the fixed loop in this process (single-threaded, CPU-bound)."""
    t0 = time.perf_counter()
    sum(i * i for i in range(LOOP_N))
    return time.perf_counter() - t0
