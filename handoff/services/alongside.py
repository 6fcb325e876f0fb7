"""Two independent requests at once, so a request path waits for one round trip instead of two.

Used where a use case makes two writes that neither depends on nor orders: a new handoff's index entry
(insert-if-absent, so it can never replace a later status) and the queue message of its first step; a
delivery's thread links and its cross-link into the source thread; a hand-back's history entries and its
post into the source thread. Each side runs in the caller's context
(:mod:`contextvars`), so the storage counters and the trace context see it as the caller's own work.

The side threads are few and shared by the process. When all are busy (or the process is shutting down)
the caller runs the side itself, one after the other as before: a side never waits in a queue behind
other callers' sides, so a burst of slow ones cannot hold up every accept. A side never uses
:func:`alongside` itself.
"""

from __future__ import annotations

import contextvars
import threading
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import TypeVar

T = TypeVar("T")

SIDE_THREADS = 16
"""Threads that run the side requests of one process (they wait on I/O)."""

_pool: ThreadPoolExecutor | None = None
_pool_lock = threading.Lock()
_free = threading.BoundedSemaphore(SIDE_THREADS)


def _executor() -> ThreadPoolExecutor:
    global _pool
    if _pool is None:
        with _pool_lock:
            if _pool is None:
                _pool = ThreadPoolExecutor(max_workers=SIDE_THREADS, thread_name_prefix="alongside")
    return _pool


def _start(side: Callable[[], object]) -> Future[object] | None:
    """``side`` started on a free side thread, or None when none is free."""
    if not _free.acquire(blocking=False):
        return None
    run = contextvars.copy_context().run
    try:
        future = _executor().submit(run, side)
    except RuntimeError:  # the interpreter is shutting down: no new threads
        _free.release()
        return None
    future.add_done_callback(lambda _: _free.release())
    return future


def alongside(side: Callable[[], object], main: Callable[[], T]) -> T:
    """``main()`` on this thread while ``side()`` runs on a side thread; ``main``'s result once both are
    done. Both have finished before this returns or raises (the caller's answer, and its next write,
    never race these); ``main``'s exception wins, and ``side``'s is raised only when ``main`` succeeded."""
    future = _start(side)
    if future is None:
        return _one_after_the_other(side, main)
    try:
        result = main()
    except BaseException:
        future.exception()  # waits; main's error is the one the caller must see
        raise
    future.result()
    return result


def _one_after_the_other(side: Callable[[], object], main: Callable[[], T]) -> T:
    side_error: Exception | None = None
    try:
        side()
    except Exception as exc:  # raised after main, as when the two run at once
        side_error = exc
    result = main()
    if side_error is not None:
        raise side_error
    return result
