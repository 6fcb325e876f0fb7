"""The handoff index on Table Storage (table ``handoffindex``): what ``GET /api/handoffs`` lists.

Partition key ``d|<UTC day of creation>`` (``d|20261202``), row key ``<inverted epoch ms>|<handoff id>``
(see :mod:`handoff.domain.listing`), so each day's partition reads newest first. An entry is upserted
(replaced whole) at each status change of its handoff. Every read is one query of one day's partition,
its filters passed as parameters, never spliced into the filter's text.

Table Storage refuses a filter of more than :data:`MAX_COMPARISONS` comparisons. The caller's agents
cost two each (source or target), so for a caller of many agents they are checked on each entry the
query returns (:func:`handoff.domain.listing.matches`) instead of in the query: the caller still sees
only its agents' handoffs, and the query still reads one partition.
"""

from __future__ import annotations

from datetime import date
from typing import Any

from azure.data.tables import UpdateMode

from handoff.adapters.azure_storage.clients import StorageClients, storage_errors
from handoff.domain.listing import (
    HandoffSummary,
    IndexFilter,
    IndexRow,
    day_partition,
    index_columns,
    matches,
    row_key,
    summary_from,
    utc_day,
)
from handoff.settings import INDEX_TABLE

MAX_COMPARISONS = 15
"""The most comparisons Table Storage takes in one query's filter."""


class TableHandoffIndex:
    """Implements :class:`handoff.ports.HandoffIndex`."""

    def __init__(self, clients: StorageClients) -> None:
        self.table = clients.table(INDEX_TABLE)

    def put(self, summary: HandoffSummary) -> None:
        entity = {
            "PartitionKey": day_partition(utc_day(summary.created_at)),
            "RowKey": row_key(summary),
            **index_columns(summary),
        }
        with storage_errors():
            self.table.upsert_entity(entity, mode=UpdateMode.REPLACE)

    def read_day(
        self, day: date, where: IndexFilter, limit: int, after: str | None = None, until: str | None = None
    ) -> list[IndexRow]:
        clauses, params, left = filter_clauses(day, where, after, until)
        rows: list[IndexRow] = []
        if limit <= 0:
            return rows
        with storage_errors():
            for entity in self.table.query_entities(
                # Entries checked here are skipped, so a page of the query holds as many as it may.
                " and ".join(clauses),
                parameters=params,
                results_per_page=1000 if left is not None else min(limit, 1000),
            ):
                if left is not None and not matches(entity, left):
                    continue
                rows.append(IndexRow(row_key=entity["RowKey"], summary=summary_from(entity)))
                if len(rows) >= limit:
                    break
        return rows


def filter_clauses(
    day: date, where: IndexFilter, after: str | None, until: str | None
) -> tuple[list[str], dict[str, Any], IndexFilter | None]:
    """The clauses of one day's query (joined by ``and``), their parameters, and what is left to check on
    each entry it returns (None: nothing; the caller's agents when they would take the filter past
    :data:`MAX_COMPARISONS`). The clauses name only parameters, whatever the caller sent."""
    clauses = ["PartitionKey eq @pk"]
    params: dict[str, Any] = {"pk": day_partition(day)}
    if after is not None:
        clauses.append("RowKey gt @after")
        params["after"] = after
    if until is not None:
        clauses.append("RowKey le @until")
        params["until"] = until
    for column, name, value in (
        ("Status", "status", where.status),
        ("SourceKey", "source", where.source),
        ("TargetKey", "target", where.target),
        ("AlertRuleKey", "rule", where.alert_rule),
    ):
        if value is not None:
            clauses.append(f"{column} eq @{name}")
            params[name] = value
    if where.agents is None:
        return clauses, params, None
    names = sorted(where.agents)
    if not names or len(clauses) + 2 * len(names) > MAX_COMPARISONS:
        # Too many to ask storage for: each entry the query returns is checked instead.
        return clauses, params, IndexFilter(agents=where.agents)
    # Only handoffs the caller's agents handed off or received (filtered by storage: pages stay full).
    params.update({f"seen{index}": name for index, name in enumerate(names)})
    either = " or ".join(
        f"SourceKey eq @seen{index} or TargetKey eq @seen{index}" for index in range(len(names))
    )
    clauses.append(f"( {either} )")
    return clauses, params, None
