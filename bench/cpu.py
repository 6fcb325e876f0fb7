"""CPU time of the benchmark's two busy processes, to tell what bounds a rate on this machine.

Azurite is one Node process (at most one core); the benchmark's own process holds the broker, the
simulated agents and the load clients (one GIL). Their CPU time per handoff, against the machine's cores,
gives the most handoffs a second this machine could serve however fast the broker's code became: the
ceiling a throughput target must fit under before it can be met here.

Of this process's CPU, :data:`FUNCTIONS` counts what the threads running the broker's functions spent in
them (and in the side requests they start): the part a Functions worker process would spend, where the
host's HTTP server and queue listener, the agents and the clients run elsewhere.
"""

from __future__ import annotations

import os
import threading
import time
from collections import Counter
from collections.abc import Callable
from contextvars import ContextVar
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any


def cpu_seconds(pid: int) -> float | None:
    """User + system CPU seconds of process ``pid`` so far, all its threads (Linux ``/proc``); None where
    that cannot be read."""
    try:
        # Fields after the command name's closing parenthesis start at field 3; utime and stime are 14, 15.
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, IndexError, ValueError):
        return None


class ThreadCpu:
    """CPU seconds the threads spent inside the functions :meth:`timed` wrapped (``time.thread_time``),
    by the name of the broker function they ran for (:data:`FUNCTION`, which side requests inherit)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._seconds: Counter[str] = Counter()

    def timed(self, function: Callable[..., Any]) -> Callable[..., Any]:
        """``function``, adding its thread's CPU time at each call."""

        def run(*args: Any, **kwargs: Any) -> Any:
            start = time.thread_time()
            try:
                return function(*args, **kwargs)
            finally:
                spent = time.thread_time() - start
                with self._lock:
                    self._seconds[FUNCTION.get()] += spent

        return run

    def seconds(self) -> dict[str, float]:
        """CPU seconds so far by function name (a copy)."""
        with self._lock:
            return dict(self._seconds)


FUNCTION: ContextVar[str] = ContextVar("bench-function", default="")
"""The broker function the current code runs for (set by the benchmark's host)."""
FUNCTIONS = ThreadCpu()
"""The broker's functions (sync invocations and the side requests they start; see :mod:`bench.stack`)."""


@dataclass
class CpuUse:
    """CPU seconds spent during one measured phase, and its wall time."""

    azurite: float | None
    here: float
    wall: float
    # Of ``here``: inside the broker's functions (:data:`FUNCTIONS`), by function name.
    functions: dict[str, float] = field(default_factory=dict)


class CpuMeter:
    """``with CpuMeter(pid) as meter: ...`` then ``meter.use``: the CPU Azurite (process ``pid``) and this
    process spent inside the block."""

    def __init__(self, azurite_pid: int) -> None:
        self.azurite_pid = azurite_pid
        self.use = CpuUse(None, 0.0, 0.0)
        self._start: tuple[float | None, float, float, dict[str, float]] = (None, 0.0, 0.0, {})

    def __enter__(self) -> CpuMeter:
        self._start = (
            cpu_seconds(self.azurite_pid), time.process_time(), time.perf_counter(), FUNCTIONS.seconds()
        )  # fmt: skip
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        azurite_start, here_start, wall_start, functions_start = self._start
        azurite_end = cpu_seconds(self.azurite_pid)
        azurite = None if azurite_start is None or azurite_end is None else azurite_end - azurite_start
        self.use = CpuUse(
            azurite,
            time.process_time() - here_start,
            time.perf_counter() - wall_start,
            {name: spent - functions_start.get(name, 0.0) for name, spent in FUNCTIONS.seconds().items()},
        )


def ceiling(cpu_ms_per_item: float, cores: int | None = None) -> float:
    """Items a second the machine's cores could do at ``cpu_ms_per_item`` of CPU each, fully busy."""
    return (cores or os.cpu_count() or 1) * 1000 / cpu_ms_per_item if cpu_ms_per_item > 0 else float("nan")
