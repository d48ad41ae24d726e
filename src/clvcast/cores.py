"""The cores a computation may use, and work spread over them in threads.

numpy releases the GIL while it works on large arrays, so plain threads put every core to
work on independent pieces of one computation (the BG/NBD and Gamma-Gamma row sums,
:mod:`clvcast.models.likelihood`).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

T = TypeVar("T")
R = TypeVar("R")


def usable_cores() -> int:
    """Cores this process may run on."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


def map_in_order(work: Callable[[T], R], items: Sequence[T], threads: int) -> list[R]:
    """``[work(item) for item in items]``, computed on up to ``threads`` threads.

    Each thread takes one contiguous run of the items, and the results come back in the
    items' order, so a caller that adds them up in that order gets the same sum, bit for bit,
    on any number of threads.
    """
    threads = max(1, min(threads, len(items)))
    if threads == 1:
        return [work(item) for item in items]
    size, extra = divmod(len(items), threads)
    runs, start = [], 0
    for index in range(threads):
        stop = start + size + (1 if index < extra else 0)
        runs.append(items[start:stop])
        start = stop
    with ThreadPoolExecutor(threads) as pool:
        parts = pool.map(lambda run: [work(item) for item in run], runs)
        return [result for part in parts for result in part]
