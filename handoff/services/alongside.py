"""Two independent requests at once, so a request path waits for one round trip instead of two.

Used where a use case makes two writes that neither depends on nor orders: the new handoff's index entry
(insert-if-absent, so it can never replace a later status) and the queue message of its first step.
Each runs in the caller's context (:mod:`contextvars`), so the storage counters, the held lease and the
trace context see it as the caller's own work.
"""

from __future__ import annotations

import contextvars
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

T = TypeVar("T")

SIDE_THREADS = 16
"""Threads that run the side requests of one process (they wait on I/O; a busy pool queues them)."""

_pool: ThreadPoolExecutor | None = None
_pool_lock = threading.Lock()


def _executor() -> ThreadPoolExecutor:
    global _pool
    if _pool is None:
        with _pool_lock:
            if _pool is None:
                _pool = ThreadPoolExecutor(max_workers=SIDE_THREADS, thread_name_prefix="alongside")
    return _pool


def alongside(side: Callable[[], object], main: Callable[[], T]) -> T:
    """``main()`` on this thread while ``side()`` runs on a pool thread; ``main``'s result once both are
    done. Both have finished before this returns or raises (the caller's answer never races its own
    writes); ``main``'s exception wins, and ``side``'s is raised only when ``main`` succeeded."""
    future = _executor().submit(contextvars.copy_context().run, side)
    try:
        result = main()
    except BaseException:
        future.exception()  # waits; main's error is the one the caller must see
        raise
    future.result()
    return result
