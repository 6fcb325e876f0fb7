"""The handoff index on Table Storage (table ``handoffindex``): what ``GET /api/handoffs`` lists.

Partition key ``d|<UTC day of creation>`` (``d|20261202``), row key ``<inverted epoch ms>|<handoff id>``
(see :mod:`handoff.domain.listing`), so each day's partition reads newest first. A new handoff's entry
is inserted if absent (so it never replaces one its worker already wrote), then upserted (replaced
whole) at each status change. Every read queries one day's partition, its filters passed as parameters,
never spliced into the filter's text.

Table Storage refuses a filter of more than :data:`MAX_COMPARISONS` comparisons, and each of the
caller's agents costs two (source or target). For a caller of more agents than one filter holds, a day
is read by one query per group of agents that fits, each for at most the rows the page still needs; the
page is the newest of them all (a handoff between agents of two groups counted once). Storage filters
every row, so the caller sees only its agents' handoffs and no query reads more than the page needs.
"""

from __future__ import annotations

import contextlib
from datetime import date
from typing import Any

from azure.core.exceptions import ResourceExistsError
from azure.data.tables import UpdateMode

from handoff.adapters.azure_storage.clients import StorageClients, storage_errors
from handoff.domain.listing import (
    HandoffSummary,
    IndexFilter,
    IndexRow,
    day_partition,
    index_columns,
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
        with storage_errors():
            self.table.upsert_entity(_entity(summary), mode=UpdateMode.REPLACE)

    def add(self, summary: HandoffSummary) -> None:
        with storage_errors(), contextlib.suppress(ResourceExistsError):
            self.table.create_entity(_entity(summary))

    def read_day(
        self, day: date, where: IndexFilter, limit: int, after: str | None = None, until: str | None = None
    ) -> list[IndexRow]:
        found: dict[str, IndexRow] = {}
        if limit <= 0:
            return []
        with storage_errors():
            for clauses, params in filter_queries(day, where, after, until):
                entities = self.table.query_entities(
                    " and ".join(clauses), parameters=params, results_per_page=min(limit, 1000)
                )
                for read, entity in enumerate(entities, start=1):
                    found.setdefault(entity["RowKey"], IndexRow(entity["RowKey"], summary_from(entity)))
                    if read >= limit:
                        break
        # Row keys sort as the partition reads (newest first), so the newest of every query come first.
        return [found[key] for key in sorted(found)][:limit]


def _entity(summary: HandoffSummary) -> dict[str, Any]:
    return {
        "PartitionKey": day_partition(utc_day(summary.created_at)),
        "RowKey": row_key(summary),
        **index_columns(summary),
    }


def filter_queries(
    day: date, where: IndexFilter, after: str | None, until: str | None
) -> list[tuple[list[str], dict[str, Any]]]:
    """The queries that read one day for ``where``: the clauses of each (joined by ``and``) and their
    parameters. One query, unless the caller's agents do not fit one filter: then one per group of
    agents that fits within :data:`MAX_COMPARISONS` (none for a caller of no agent)."""
    clauses, params = filter_clauses(day, where, after, until)
    if where.agents is None:
        return [(clauses, params)]
    names = sorted(where.agents)
    per_query = max(1, (MAX_COMPARISONS - len(clauses)) // 2)
    queries = []
    for first in range(0, len(names), per_query):
        group = names[first : first + per_query]
        # Only handoffs the caller's agents handed off or received (filtered by storage: pages stay full).
        either = " or ".join(f"SourceKey eq @seen{i} or TargetKey eq @seen{i}" for i in range(len(group)))
        seen = {f"seen{i}": name for i, name in enumerate(group)}
        queries.append(([*clauses, f"( {either} )"], {**params, **seen}))
    return queries


def filter_clauses(
    day: date, where: IndexFilter, after: str | None, until: str | None
) -> tuple[list[str], dict[str, Any]]:
    """The clauses of one day's query (joined by ``and``) and their parameters, without the caller's
    agents (:func:`filter_queries` adds them): the clauses name only parameters, whatever the caller
    sent."""
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
    return clauses, params
