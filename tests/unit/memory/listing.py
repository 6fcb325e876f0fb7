"""The :class:`~handoff.ports.HandoffIndex` port in memory, with the layout of the Table adapter
(``handoff/adapters/azure_storage/listing.py``): one partition per UTC day of creation, row keys
``<inverted epoch ms>|<handoff id>`` read in order (newest first), entries replaced whole by ``put``,
the same equality filters and row-key bounds. :attr:`reads` counts the day partitions read (one query
each in the adapter); :attr:`faults` makes it fail.
"""

from __future__ import annotations

from datetime import date
from typing import Any

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
from tests.unit.memory.faults import StorageFaults


class MemoryHandoffIndex:
    """Implements the handoff index port in memory."""

    def __init__(self) -> None:
        self.faults = StorageFaults()
        self.partitions: dict[str, dict[str, dict[str, Any]]] = {}
        self.reads: list[str] = []
        self.writes = 0  # puts and adds

    def put(self, summary: HandoffSummary) -> None:
        self._partition(summary, "put")[row_key(summary)] = index_columns(summary)

    def add(self, summary: HandoffSummary) -> None:
        self._partition(summary, "add").setdefault(row_key(summary), index_columns(summary))

    def _partition(self, summary: HandoffSummary, op: str) -> dict[str, dict[str, Any]]:
        """The day partition ``op`` writes ``summary`` into (counted as one write)."""
        self.faults.check(op)
        self.writes += 1
        return self.partitions.setdefault(day_partition(utc_day(summary.created_at)), {})

    def read_day(
        self, day: date, where: IndexFilter, limit: int, after: str | None = None, until: str | None = None
    ) -> list[IndexRow]:
        self.faults.check("read_day")
        pk = day_partition(day)
        self.reads.append(pk)
        rows: list[IndexRow] = []
        for key, columns in sorted(self.partitions.get(pk, {}).items()):
            if len(rows) >= limit:
                break
            if (after is not None and key <= after) or (until is not None and key > until):
                continue
            if matches(columns, where):
                rows.append(IndexRow(row_key=key, summary=summary_from(columns)))
        return rows

    def entry(self, handoff_id: str) -> dict[str, Any] | None:
        """The columns of a handoff's entry (behind the port, for tests)."""
        for partition in self.partitions.values():
            for columns in partition.values():
                if columns["HandoffId"] == handoff_id:
                    return columns
        return None
