"""The history index's rows: one per hand-back and scope, newest first by row key. One definition for
the Table adapter and the in-memory index of the unit tests, so the two cannot drift."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from handoff.domain.history import ALL_PARTITION, HistoryItem, as_utc, scopes_of
from handoff.domain.messages import thread_url
from handoff.domain.records import HandoffRecord, StoredHandback
from handoff.domain.registry import Registry

MAX_MS = 9_999_999_999_999
COLUMN_CHARS = 16_000  # what one string property of a row holds (64 KiB of UTF-16), with room to spare


def json_list(values: list[str], limit: int = COLUMN_CHARS) -> str:
    """``values`` as a JSON array of at most ``limit`` characters that is still JSON: whole items while
    they fit, then as much of the next one's text as fits. The text is cut, never the JSON (a row whose
    column was cut mid-string could not be read back)."""
    kept: list[str] = []
    for value in values:
        if len(json.dumps([*kept, value])) <= limit:
            kept.append(value)
            continue
        cut = value[: max(0, limit - len(json.dumps([*kept, ""])))]
        while cut and len(json.dumps([*kept, cut])) > limit:  # escapes make some characters longer
            cut = cut[: len(cut) * 9 // 10]
        if cut:
            kept.append(cut)
        break
    return json.dumps(kept)


def time_key(at: datetime) -> str:
    """Row-key prefix of ``at``: inverted milliseconds, so newer rows sort first."""
    return f"{MAX_MS - int(as_utc(at).timestamp() * 1000):013d}"


def since_key(at: datetime) -> str:
    """Rows handed back at or after ``at`` have row keys below this."""
    return f"{MAX_MS - int(as_utc(at).timestamp() * 1000) + 1:013d}"


def history_row(
    record: HandoffRecord,
    handback: StoredHandback,
    thread_urls: dict[str, str | None],
    alert_rule: str | None = None,
) -> tuple[str, dict[str, Any], list[str]]:
    """The row key, the row's columns and the scopes (partitions) a hand-back is indexed under."""
    stored = record.stored
    context = stored.request.context
    request = handback.request
    row_key = f"{time_key(handback.received_at)}|{stored.id}|{handback.seq:05d}"
    columns: dict[str, Any] = {
        "HandoffId": stored.id,
        "RootId": stored.root_id,
        "Seq": handback.seq,
        "Title": context.title,
        "Summary": (request.summary or "")[:8000],
        "RootCause": (request.root_cause or "")[:8000],
        "Actions": json_list(request.recommended_actions[:20]),
        "Resources": json_list(context.resources),
        "Source": stored.source_agent,
        "Target": stored.target_agent,
        "SourceKey": stored.source_agent.lower(),
        "TargetKey": stored.target_agent.lower(),
        "Outcome": request.outcome,
        "AlertRule": alert_rule or "",
        "AlertRuleKey": (alert_rule or "").lower(),
        "ThreadUrls": json.dumps({k: v for k, v in thread_urls.items() if v}),
        "HandedBackAt": handback.received_at,
    }
    scopes = {ALL_PARTITION}
    for resource in context.resources:
        scopes.update(scopes_of(resource))
    return row_key, columns, sorted(scopes)


def row_thread_urls(record: HandoffRecord, registry: Registry) -> dict[str, str | None]:
    """Links to the source and target threads for a row (``None`` when unknown)."""
    source = registry.find(record.stored.source_agent)
    target = registry.find(record.stored.target_agent)
    return {
        "source": thread_url(source.resource_id if source else None, record.stored.request.source.thread_id),
        "target": thread_url(target.resource_id if target else None, record.state.target_thread_id),
    }


def history_item(row: dict[str, Any]) -> HistoryItem:
    """A row as a search result (older rows may lack the JSON columns, or hold them cut short)."""
    return HistoryItem(
        handoff_id=row["HandoffId"],
        title=row["Title"],
        resources=_json_column(row, "Resources", []),
        source=row["Source"],
        target=row["Target"],
        outcome=row["Outcome"],
        root_cause=row.get("RootCause") or None,
        recommended_actions=_json_column(row, "Actions", []),
        thread_urls=_json_column(row, "ThreadUrls", {}),
        handed_back_at=row["HandedBackAt"],
    )


def _json_column(row: dict[str, Any], name: str, empty: Any) -> Any:
    """A JSON column of a row, or ``empty`` where it is missing or unreadable: rows written before
    :func:`json_list` cut long lists mid-string, and one such row must not fail every search it is in."""
    try:
        value = json.loads(row.get(name) or "null")
    except ValueError:
        return empty
    return value if isinstance(value, type(empty)) else empty
