"""Many captures at once: a function mapped over them by worker processes, results in input order."""

from __future__ import annotations

import multiprocessing
import signal
import sys
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ProcessPoolExecutor
from itertools import islice
from typing import TypeVar

from ..sources.prefetch import usable_cores

__all__ = ["map_ordered", "usable_cores"]

T = TypeVar("T")
R = TypeVar("R")


def map_ordered(fn: Callable[[T], R], items: Sequence[T], jobs: int) -> Iterator[R]:
    """``fn`` of each item, yielded in the items' order as soon as it and those before it are
    done, computed by up to ``jobs`` worker processes. At most two items per worker are in flight
    (running, queued, or done and waiting for their turn), so memory holds a bounded number of
    results. ``fn``, the items and the results must pickle; ``fn``'s exception is raised at its
    item. With one job or one item, ``fn`` runs here, one item at a time. Leaving early (an
    exception, KeyboardInterrupt, closing the iterator) terminates the workers; they ignore
    SIGINT, which a terminal's Ctrl-C sends them too."""
    if jobs <= 1 or len(items) <= 1:
        for item in items:
            yield fn(item)
        return
    workers = min(jobs, len(items))
    # forked workers inherit the parent's buffered output: let none of it be written twice
    sys.stdout.flush()
    sys.stderr.flush()
    pool = ProcessPoolExecutor(workers, mp_context=_context(), initializer=signal.signal,
                               initargs=(signal.SIGINT, signal.SIG_IGN))
    todo = iter(items)
    finished = False
    try:
        pending: deque[Future[R]] = deque(pool.submit(fn, item) for item in islice(todo, 2 * workers))
        while pending:
            result = pending.popleft().result()
            pending.extend(pool.submit(fn, item) for item in islice(todo, 1))
            yield result
        finished = True
    finally:
        if not finished:
            for process in list(pool._processes.values()):  # no public way before Python 3.14
                process.terminate()
        pool.shutdown(wait=True, cancel_futures=True)


def _context() -> multiprocessing.context.BaseContext:
    """Fork where the platform can (the workers start at once, with smcwire already imported)."""
    methods = multiprocessing.get_all_start_methods()
    return multiprocessing.get_context("fork" if "fork" in methods else None)
