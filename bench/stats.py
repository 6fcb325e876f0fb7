"""Percentiles and the benchmark's report: each figure printed as ``name value unit (ratio to basis)``."""

from __future__ import annotations

import json
import math
import statistics
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any


def percentile(values: list[float], q: float) -> float:
    """The ``q``-th percentile (0-100) by nearest rank: an observed value, never an interpolation."""
    if not values:
        return math.nan
    ordered = sorted(values)
    rank = max(1, math.ceil(q / 100 * len(ordered)))
    return ordered[rank - 1]


def median(values: list[float]) -> float:
    """The median, NaN for no values."""
    return statistics.median(values) if values else math.nan


def ms(seconds: list[float]) -> list[float]:
    """Seconds as milliseconds, rounded to microseconds (the JSON stays small)."""
    return [round(value * 1000, 3) for value in seconds]


@dataclass
class Figure:
    """One reported figure. ``ratio`` is ``value / basis_value`` where a basis applies."""

    name: str
    value: float
    unit: str
    ratio: float | None = None
    basis: str = ""
    n: int | None = None

    def line(self) -> str:
        """``name value unit (ratio to basis)``."""
        value = f"{self.value:.0f}" if abs(self.value) >= 1000 else f"{self.value:.3g}"
        if self.ratio is None or math.isnan(self.ratio):
            tail = f"({self.basis})" if self.basis else "(no floor)"
        else:
            tail = f"({self.ratio:.2f}x {self.basis})"
        count = f"  [n={self.n}]" if self.n is not None else ""
        return f"{self.name:48s} {value:>9s} {self.unit:12s} {tail}{count}"


@dataclass
class Report:
    """The figures of one run and the raw data behind them, printed as they come."""

    figures: list[Figure] = field(default_factory=list)
    data: dict[str, Any] = field(default_factory=dict)

    def section(self, title: str) -> None:
        """Print a section heading."""
        print(f"\n== {title} ==", flush=True)

    def add(
        self,
        name: str,
        value: float,
        unit: str,
        *,
        basis_value: float | None = None,
        basis: str = "",
        n: int | None = None,
    ) -> Figure:
        """Record and print a figure; with ``basis_value`` its ratio to it."""
        ratio = value / basis_value if basis_value else None
        figure = Figure(name, value, unit, ratio, basis, n)
        self.figures.append(figure)
        print(figure.line(), flush=True)
        return figure

    def latency(self, name: str, samples: list[float], floor: tuple[float, float] | None, basis: str) -> None:
        """p50 and p99 of ``samples`` (seconds) in ms, each against the floor's p50 / p99 (seconds)."""
        p50, p99 = percentile(samples, 50) * 1000, percentile(samples, 99) * 1000
        self.add(f"{name} p50", p50, "ms", basis_value=floor and floor[0] * 1000, basis=basis, n=len(samples))
        self.add(f"{name} p99", p99, "ms", basis_value=floor and floor[1] * 1000, basis=basis, n=len(samples))

    def write(self, path: Path) -> None:
        """Write the figures and the raw data as JSON."""
        path.parent.mkdir(parents=True, exist_ok=True)
        body = {**self.data, "figures": [asdict(figure) for figure in self.figures]}
        path.write_text(json.dumps(_plain(body), indent=1) + "\n")


def _plain(value: Any) -> Any:
    """``value`` with NaN as null (JSON has no NaN)."""
    if isinstance(value, float) and math.isnan(value):
        return None
    if isinstance(value, dict):
        return {key: _plain(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(item) for item in value]
    return value
