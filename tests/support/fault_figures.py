"""Figures of the fault suite (tests/e2e/test_fault_suite.py): per fault kind and step, the handoffs it
hit, those lost, the duplicates found and the measured time to recover. Printed at the end of the run;
``docs/reliability.md`` quotes them."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any


@dataclass
class FaultFigure:
    """One fault injected at one step, and what came of it."""

    kind: str
    step: str
    handoffs: int
    lost: int
    duplicates: int
    recovery_seconds: float | None = None  # from the fault (the kill) to the step done again
    after_restart_seconds: float | None = None  # from the restarted host answering to the step done


FIGURES: list[FaultFigure] = []


def record(
    kind: str,
    step: str,
    *,
    handoffs: int = 1,
    lost: int = 0,
    duplicates: int = 0,
    recovery: float | None = None,
    after_restart: float | None = None,
) -> FaultFigure:
    """Remember one figure (call it before asserting, so a failing run still reports it)."""
    figure = FaultFigure(kind, step, handoffs, lost, duplicates, recovery, after_restart)
    FIGURES.append(figure)
    return figure


def export() -> list[dict[str, Any]]:
    """The figures recorded in this process, for the process that prints the summary."""
    return [asdict(figure) for figure in FIGURES]


def merge(exported: list[dict[str, Any]]) -> None:
    """Add the figures a test worker recorded."""
    FIGURES.extend(FaultFigure(**figure) for figure in exported)


def summary(reporter: Any) -> None:
    """Print the figures and their totals."""
    if not FIGURES:
        return
    reporter.section("fault-suite figures")

    def seconds(value: float | None) -> str:
        return "-" if value is None else f"{value:.1f}s"

    for f in FIGURES:
        reporter.write_line(
            f"{f.kind:<24} {f.step:<34} handoffs {f.handoffs:>3}  lost {f.lost}  duplicates {f.duplicates}"
            f"  recovered in {seconds(f.recovery_seconds)} (after restart {seconds(f.after_restart_seconds)})"
        )
    timed = [f.recovery_seconds for f in FIGURES if f.recovery_seconds is not None]
    reporter.write_line(
        f"total: {len(FIGURES)} faults, {sum(f.handoffs for f in FIGURES)} handoffs, "
        f"{sum(f.lost for f in FIGURES)} lost, {sum(f.duplicates for f in FIGURES)} duplicates"
        + (f", slowest recovery {max(timed):.1f}s" if timed else "")
    )
