"""``timeline --png``: the chain's audit events drawn with matplotlib, one row per handoff.

matplotlib is not one of the broker's dependencies (it comes with ``requirements-bench.txt``), so it is
imported only when a PNG is asked for, and its absence is a clear message.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

import click

from handoff.entrypoints.cli.output import clean, short

INSTALL_HINT = (
    "--png needs matplotlib: pip install -r requirements-bench.txt -c constraints.txt "
    "(or pip install matplotlib)"
)
COLORS = {"ok": "#2e7d32", "failed": "#c62828", "retry": "#ef6c00", "human": "#6a1b9a", "other": "#1565c0"}
OK_EVENTS = frozenset(
    {"accepted", "delivered", "crossLinked", "handBackReceived", "handedBack", "alertFired"}
)
HUMAN_EVENTS = frozenset({"humanNote", "humanOverride", "humanEntryPosted"})


def category(event_type: str) -> str:
    """How an event is coloured: fine, failed, a retry, a person, or anything else."""
    if "Failed" in event_type or event_type in ("remoteRejected", "remoteCanceled", "workRejected"):
        return "failed"
    if event_type in ("retryScheduled", "redeliveryScheduled", "retryRequested"):
        return "retry"
    if event_type in HUMAN_EVENTS:
        return "human"
    return "ok" if event_type in OK_EVENTS else "other"


def _at(value: object) -> datetime | None:
    try:
        at = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    except ValueError:
        return None
    return at.astimezone(UTC) if at.tzinfo else at.replace(tzinfo=UTC)


def _timed(events: Sequence[Mapping[str, Any]]) -> list[tuple[float, str]]:
    """(POSIX seconds, type) of the events that carry a time, in order."""
    points = [(_at(event.get("at")), str(event.get("type"))) for event in events]
    return sorted((at.timestamp(), kind) for at, kind in points if at is not None)


def _clusters(timed: list[tuple[float, str]], gap: float) -> list[list[tuple[float, str]]]:
    """Runs of events less than ``gap`` seconds after the run's first event."""
    groups: list[list[tuple[float, str]]] = []
    for point in timed:
        if groups and point[0] - groups[-1][0][0] <= gap:
            groups[-1].append(point)
        else:
            groups.append([point])
    return groups


def draw_png(
    path: str,
    root_id: str,
    handoffs: Sequence[Mapping[str, Any]],
    audits: Mapping[str, Sequence[Mapping[str, Any]]],
) -> None:
    """Write the PNG: time across, one row per handoff (root at the top), a dot per audit event."""
    try:
        import matplotlib

        matplotlib.use("Agg")  # no display: files only
        import matplotlib.pyplot as plt
        from matplotlib.ticker import FuncFormatter
    except ImportError as exc:
        raise click.ClickException(INSTALL_HINT) from exc
    rows = len(handoffs)
    figure, axes = plt.subplots(figsize=(12, 1.8 + 1.4 * rows))
    timed_rows = [_timed(audits.get(str(handoff.get("id")), [])) for handoff in handoffs]
    moments = [at for timed in timed_rows for at, _ in timed]
    span = (max(moments) - min(moments)) if moments else 0.0
    labels = []
    for row, (handoff, timed) in enumerate(zip(handoffs, timed_rows, strict=True)):
        y = rows - 1 - row
        labels.append(
            f"{short(handoff.get('id'))}\n{clean(handoff.get('source'))} → {clean(handoff.get('target'))}"
        )
        if not timed:
            continue
        axes.plot([timed[0][0], timed[-1][0]], [y, y], color="#bbbbbb", linewidth=2, zorder=1)
        for at, kind in timed:
            axes.scatter([at], [y], color=COLORS[category(kind)], s=40, zorder=2)
        # Events close together share one label (their names stacked), above and below the line in turn.
        for index, group in enumerate(_clusters(timed, span / 40)):
            above = index % 2 == 0
            axes.annotate(
                "\n".join(clean(kind) for _, kind in group),
                (group[0][0], y),
                xytext=(0, 8 if above else -8),
                textcoords="offset points",
                fontsize=7,
                va="bottom" if above else "top",
            )
    axes.set_yticks(range(rows - 1, -1, -1), labels=labels, fontsize=8)
    axes.set_ylim(-1.0, rows)
    # x is POSIX seconds; ticks read as UTC clock times.
    axes.xaxis.set_major_formatter(
        FuncFormatter(lambda x, _: datetime.fromtimestamp(x, UTC).strftime("%H:%M:%S"))
    )
    axes.set_xlabel("UTC")
    axes.set_title(f"Handoff chain {short(root_id)}")
    axes.grid(axis="x", linestyle=":", alpha=0.5)
    for name, color in COLORS.items():
        axes.scatter([], [], color=color, label=name)
    axes.legend(loc="upper right", fontsize=7)
    figure.autofmt_xdate()
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    plt.close(figure)
