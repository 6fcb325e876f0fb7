"""Evidence of log search alerts: the query, its condition, links to the results, and the results
themselves when the alert includes them (as KQL tables)."""

from __future__ import annotations

from typing import Any

from handoff.domain.alerts.evidence.items import (
    MAX_RESULT_ROWS,
    cap,
    condition_window,
    dimensions,
    facts,
    failing_periods,
    link,
    note,
)
from handoff.domain.alerts.reading import as_text, lookup


def _search_tables(results: Any, query: str) -> list[dict[str, Any]]:
    """Included search results as KQL evidence tables (rows cut to :data:`MAX_RESULT_ROWS`)."""
    items = []
    for index, table in enumerate(lookup(results, "tables") or []):
        if not isinstance(table, dict):
            continue
        raw_columns = lookup(table, "columns") or []
        columns = [
            cap(as_text(lookup(c, "name") if isinstance(c, dict) else c) or f"column{n + 1}", 500)
            for n, c in enumerate(raw_columns[:200])
        ]
        rows = [r for r in (lookup(table, "rows") or []) if isinstance(r, list)]
        width = len(columns)
        fitted = [(row + [None] * width)[:width] for row in rows[:MAX_RESULT_ROWS]]
        name = as_text(lookup(table, "name")) or f"table {index + 1}"
        evidence: dict[str, Any] = {
            "kind": "kql",
            "title": f"Search results ({name})",
            "query": query or "(query not included in the alert)",
            "columns": columns,
            "rows": fitted,
        }
        if len(rows) > MAX_RESULT_ROWS:
            evidence["truncatedRows"] = len(rows) - MAX_RESULT_ROWS
        items.append(evidence)
    return items


def log_search_v1_evidence(ctx: Any) -> list[dict[str, Any]]:
    """A log search alert of the original API (``SearchQuery``, ``SearchResults``)."""
    query = as_text(lookup(ctx, "SearchQuery")) or ""
    end = lookup(ctx, "SearchIntervalEndtimeUtc") or lookup(ctx, "SearchIntervalEndTimeUtc")
    items = [
        note("Log search query", query),
        note(
            "Log search",
            facts(
                [
                    ("alert type", lookup(ctx, "AlertType")),
                    (
                        "time window",
                        f"{as_text(lookup(ctx, 'SearchIntervalStartTimeUtc'))} to {as_text(end)}",
                    ),
                    ("interval (minutes)", lookup(ctx, "SearchIntervalInMinutes")),
                    ("result count", lookup(ctx, "ResultCount")),
                    ("operator", lookup(ctx, "Operator")),
                    ("threshold", lookup(ctx, "Threshold")),
                    ("dimensions", dimensions(lookup(ctx, "Dimensions"))),
                    ("workspace", lookup(ctx, "WorkspaceId")),
                    ("application", lookup(ctx, "ApplicationId")),
                ]
            ),
        ),
        link("Search results", lookup(ctx, "LinkToSearchResults")),
        link("Filtered search results", lookup(ctx, "LinkToFilteredSearchResultsUI")),
    ]
    included = as_text(lookup(ctx, "IncludedSearchResults"))
    tables = _search_tables(lookup(ctx, "SearchResults"), query)
    if tables:
        items.extend(tables)
    elif (included or "").lower() != "true":
        items.append(
            note("Search results", "not included in the alert (too large or not requested); use the links")
        )
    return items


def log_search_v2_evidence(ctx: Any) -> list[dict[str, Any]]:
    """A log search alert of the scheduled query rules API (``LogQueryCriteria``)."""
    items = [
        note("Condition", facts([("type", lookup(ctx, "conditionType")), ("window", condition_window(ctx))]))
    ]
    for criterion in lookup(ctx, "condition", "allOf") or []:
        if not isinstance(criterion, dict):
            continue
        query = as_text(lookup(criterion, "searchQuery")) or ""
        items.append(note("Log search query", query))
        items.append(
            note(
                "Log search",
                facts(
                    [
                        ("aggregation", lookup(criterion, "timeAggregation")),
                        ("measure column", lookup(criterion, "metricMeasureColumn")),
                        ("operator", lookup(criterion, "operator")),
                        ("threshold", lookup(criterion, "threshold")),
                        ("observed value", lookup(criterion, "metricValue")),
                        ("dimensions", dimensions(lookup(criterion, "dimensions"))),
                        ("failing periods", failing_periods(criterion)),
                        ("resource types", lookup(criterion, "targetResourceTypes")),
                    ]
                ),
            )
        )
        items.append(link("Search results", lookup(criterion, "linkToSearchResultsUI")))
        items.append(link("Filtered search results", lookup(criterion, "linkToFilteredSearchResultsUI")))
        events = lookup(criterion, "event")
        if isinstance(events, list) and events:
            items.extend(_event_table(events, query))
    return items


def _event_table(events: list[Any], query: str) -> list[dict[str, Any]]:
    """ "Simple log alert" events: each a list of ``{name, value}`` pairs, as one KQL table."""
    columns: list[str] = []
    records = []
    for event in events[:MAX_RESULT_ROWS]:
        pairs = event if isinstance(event, list) else []
        record = {}
        for pair in pairs:
            name = as_text(lookup(pair, "name"))
            if name:
                record[name] = lookup(pair, "value")
                if name not in columns:
                    columns.append(name)
        records.append(record)
    if not columns:
        return []
    columns = columns[:200]
    rows = [[record.get(c) for c in columns] for record in records]
    return [
        {
            "kind": "kql",
            "title": "Search results (events)",
            "query": query or "(query not included)",
            "columns": [cap(c, 500) for c in columns],
            "rows": rows,
        }
    ]
