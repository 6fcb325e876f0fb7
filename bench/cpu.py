"""CPU time of the benchmark's two busy processes, to tell what bounds a rate on this machine.

Azurite is one Node process (at most one core); the benchmark's own process holds the broker, the
simulated agents and the load clients (one GIL). Their CPU time per handoff, against the machine's cores,
gives the most handoffs a second this machine could serve however fast the broker's code became: the
ceiling a throughput target must fit under before it can be met here.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType


def cpu_seconds(pid: int) -> float | None:
    """User + system CPU seconds of process ``pid`` so far, all its threads (Linux ``/proc``); None where
    that cannot be read."""
    try:
        # Fields after the command name's closing parenthesis start at field 3; utime and stime are 14, 15.
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, IndexError, ValueError):
        return None


@dataclass
class CpuUse:
    """CPU seconds spent during one measured phase, and its wall time."""

    azurite: float | None
    here: float
    wall: float


class CpuMeter:
    """``with CpuMeter(pid) as meter: ...`` then ``meter.use``: the CPU Azurite (process ``pid``) and this
    process spent inside the block."""

    def __init__(self, azurite_pid: int) -> None:
        self.azurite_pid = azurite_pid
        self.use = CpuUse(None, 0.0, 0.0)
        self._start: tuple[float | None, float, float] = (None, 0.0, 0.0)

    def __enter__(self) -> CpuMeter:
        self._start = (cpu_seconds(self.azurite_pid), time.process_time(), time.perf_counter())
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        azurite_start, here_start, wall_start = self._start
        azurite_end = cpu_seconds(self.azurite_pid)
        azurite = None if azurite_start is None or azurite_end is None else azurite_end - azurite_start
        self.use = CpuUse(azurite, time.process_time() - here_start, time.perf_counter() - wall_start)


def ceiling(cpu_ms_per_item: float, cores: int | None = None) -> float:
    """Items a second the machine's cores could do at ``cpu_ms_per_item`` of CPU each, fully busy."""
    return (cores or os.cpu_count() or 1) * 1000 / cpu_ms_per_item if cpu_ms_per_item > 0 else float("nan")
