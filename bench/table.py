"""The figures of a results file as a Markdown table (for docs/performance.md):
``python -m bench.table bench/results/<date>.json``.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any


def _value(figure: dict[str, Any]) -> str:
    value = figure["value"]
    return f"{value:.0f}" if abs(value) >= 100 else f"{value:.3g}"


def _ratio(figure: dict[str, Any]) -> str:
    if figure["ratio"] is None:
        return figure["basis"] or "—"
    return f"{figure['ratio']:.2f}x {figure['basis']}"


def table(results: dict[str, Any]) -> str:
    """One row per figure: name, value, unit, ratio (to the floor or the target), samples."""
    rows = ["| Figure | Value | Unit | Ratio | n |", "|---|---:|---|---|---:|"]
    for figure in results["figures"]:
        n = "" if figure["n"] is None else str(figure["n"])
        rows.append(f"| {figure['name']} | {_value(figure)} | {figure['unit']} | {_ratio(figure)} | {n} |")
    return "\n".join(rows)


def main(argv: list[str] | None = None) -> None:
    """Print the table."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("results", type=Path)
    print(table(json.loads(parser.parse_args(argv).results.read_text())))


if __name__ == "__main__":
    main()
