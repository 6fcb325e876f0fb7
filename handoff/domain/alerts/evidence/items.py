"""Evidence items of an alert handoff (notes, links, KQL tables, raw data) and the small formatters the
kind-specific mappings share."""

from __future__ import annotations

import json
import re
from typing import Any

from handoff.domain.alerts.reading import as_text, lookup

MAX_URL = 4096  # the longest link a handoff keeps (models.HttpUrl)
MAX_RESULT_ROWS = 500  # rows of a search result table kept as evidence


def note(title: str, content: str | None) -> dict[str, Any]:
    """A ``note`` item, or nothing (an empty item, dropped later) without content."""
    return (
        {"kind": "note", "title": cap(title, 500), "content": cap(content or "", 60_000)} if content else {}
    )


def link(title: str, url: Any) -> dict[str, Any]:
    """A ``link`` item for an http(s) URL, or nothing."""
    text = as_text(url)
    if not text or not re.match(r"^https?://[^\s/]+", text) or len(text) > MAX_URL:
        return {}
    return {"kind": "link", "title": title, "url": text}


def cap(text: str, limit: int) -> str:
    """``text`` cut to ``limit`` characters (the last one an ellipsis when cut)."""
    return text if len(text) <= limit else text[: limit - 1] + "…"


def facts(pairs: list[tuple[str, Any]]) -> str | None:
    """``label: value`` pairs joined with `` · `` (pairs without a value are left out)."""
    parts = []
    for label, value in pairs:
        text = as_text(value) if not isinstance(value, list | dict) else json.dumps(value, ensure_ascii=False)
        if text:
            parts.append(f"{label}: {text}")
    return " · ".join(parts) or None


def dimensions(value: Any) -> str | None:
    """``name=value`` pairs of a criterion's dimensions."""
    if not isinstance(value, list):
        return None
    pairs = [
        f"{as_text(lookup(d, 'name'))}={as_text(lookup(d, 'value'))}" for d in value if isinstance(d, dict)
    ]
    return ", ".join(pairs) or None


def condition_window(ctx: Any) -> str | None:
    """The evaluation window of a metric or log search condition."""
    condition = lookup(ctx, "condition")
    start, end = as_text(lookup(condition, "windowStartTime")), as_text(lookup(condition, "windowEndTime"))
    size = as_text(lookup(condition, "windowSize"))
    parts = [f"window size {size}" if size else "", f"{start} to {end}" if start or end else ""]
    return ", ".join(p for p in parts if p) or None


def failing_periods(criterion: Any) -> str | None:
    """``N of M periods`` of a criterion's ``failingPeriods``."""
    failing = lookup(criterion, "failingPeriods")
    if not isinstance(failing, dict):
        return None
    return (
        f"{as_text(lookup(failing, 'minFailingPeriodsToAlert'))} of "
        f"{as_text(lookup(failing, 'numberOfEvaluationPeriods'))} periods"
    )
