"""Draw the latency distributions of a benchmark run: ``python -m bench.chart bench/results/<date>.json``.

Writes ``docs/img/latency.png`` (or ``--out``): the cumulative distribution of each floor operation
and of each broker latency on one logarithmic time axis, so the distance from the floor is visible.
Needs matplotlib (``requirements-bench.txt``).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from .stack import ROOT

FLOOR_SERIES = {
    "tableInsert": "table insert",
    "batch4": "batch of 4 entities",
    "queueSend": "queue send",
    "receiveDelete": "queue receive + delete",
    "createThread": "create thread (HTTP)",
}
BROKER_SERIES = {
    "accept": "accept, sequential",
    "postToThread": "POST → thread, sequential",
    "handback": "hand-back → message in A",
    "a2aPushHandback": "A2A task done → message in A, push",
    "a2aHandback": "A2A task done → message in A, polled",
    "loadAccept": "accept, steady load",
    "loadPostToThread": "POST → thread, steady load",
    "saturatedPostToThread": "POST → thread, saturated",
}


def _ecdf(axes: Any, samples: list[float], label: str, **style: Any) -> None:
    ordered = sorted(samples)
    if not ordered:
        return
    fractions = [(i + 1) / len(ordered) for i in range(len(ordered))]
    axes.step(ordered, fractions, where="post", label=f"{label} (n={len(ordered)})", **style)


def draw(results: dict[str, Any], out: Path) -> None:
    """Draw the chart of one results file into ``out``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    floor = results["floor"]["samplesMs"]
    broker = results["broker"]["latencyMs"]
    figure, (left, right) = plt.subplots(1, 2, figsize=(13, 5.2), sharex=True, sharey=True)
    for key, label in FLOOR_SERIES.items():
        _ecdf(left, floor.get(key, []), label, linewidth=1.4)
    for key, label in BROKER_SERIES.items():
        dashed = key.startswith(("load", "saturated"))
        _ecdf(right, broker.get(key, []), label, linewidth=1.6, linestyle="--" if dashed else "-")
    accept_floor = results["broker"]["floorsMs"]["accept"][0]
    path_floor = results["broker"]["floorsMs"]["postToThread"][0]
    for axes in (left, right):
        axes.set_xscale("log")
        axes.grid(True, which="both", alpha=0.3)
        axes.axvline(accept_floor, color="grey", linestyle=":", linewidth=1)
        axes.axvline(path_floor, color="black", linestyle=":", linewidth=1)
        axes.set_xlabel("milliseconds (log scale)")
        axes.legend(fontsize=8, loc="lower right" if axes is left else "upper left")
    left.set_ylabel("fraction of samples ≤ x")
    left.set_title("Floor: the SDK and the agent, called directly")
    right.set_title("Broker: the same work through the app")
    machine = results.get("machine", {})
    figure.suptitle(
        f"Latency distributions, {results['date']} ({machine.get('cpus')} CPUs, shared machine); "
        f"dotted: floor p50 of accept (grey) and of POST → thread (black)",
        fontsize=10,
    )
    figure.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(out, dpi=110)
    plt.close(figure)


def main(argv: list[str] | None = None) -> None:
    """Read a results file and write the chart."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("results", type=Path, help="a bench/results/<date>.json file")
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "img" / "latency.png")
    args = parser.parse_args(argv)
    draw(json.loads(args.results.read_text()), args.out)
    print(f"written to {args.out}")


if __name__ == "__main__":
    main()
