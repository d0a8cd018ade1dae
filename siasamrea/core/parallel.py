"""An ordered parallel map on threads, for I/O-bound work over many files (frame counts, GIF conversion).

Threads, not processes: the work runs in C (decord, FFmpeg through PyAV) that releases the GIL, and the
results come back in input order so that reports and manifests do not depend on scheduling.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor

__all__ = ["ordered_map"]


def ordered_map(fn, items: Sequence, workers: int | None, stop=None) -> list:
    """``[fn(x) for x in items]`` on a thread pool, in input order.

    ``workers`` defaults to ``min(8, os.cpu_count())``; ``workers <= 1`` (or a single item) runs inline.
    If ``stop(result)`` is true for some result, the list ends with that result (the first such one in
    input order) and work not yet started is cancelled.
    """
    workers = min(8, os.cpu_count() or 1) if workers is None else workers
    results = []
    if workers <= 1 or len(items) <= 1:
        for item in items:
            results.append(fn(item))
            if stop is not None and stop(results[-1]):
                break
        return results
    with ThreadPoolExecutor(max_workers=workers) as pool:
        futures = [pool.submit(fn, item) for item in items]
        for fut in futures:
            results.append(fut.result())
            if stop is not None and stop(results[-1]):
                for pending in futures:
                    pending.cancel()
                break
    return results
