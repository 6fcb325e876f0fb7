"""Humans in the loop on Table Storage (table ``sharedmemory``, beside the writes' state).

* ``dest|<backend>|<record>`` / ``<handoff id>``: the destination index, one row per handoff the broker
  wrote to (or that names) the record; an entry is matched with one single-partition query;
* ``human|<backend>`` / ``<entry id>``: entries received, inserted if absent, so a replayed delivery,
  a vendor's retry and a poll of the same entry are taken once;
* ``poll|<backend>``: the records a polling backend reads, listed with one query: ``<record>``, the
  record's poll state (``PolledAt``, the cursor ``Since``/``Seen``), claimed with If-Match so one
  instance reads it, followed by ``<record>!<handoff id>`` per active investigation indexed there
  (``IndexedAt``), written with its first index row and deleted when the poller finds it closed; a
  ``!`` inside ``<record>`` is encoded (``%21``), so the first ``!`` of a key ends the record.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Callable, Iterable
from datetime import UTC, datetime

from azure.core import MatchConditions
from azure.core.exceptions import ResourceExistsError, ResourceModifiedError, ResourceNotFoundError
from azure.data.tables import TableEntity, UpdateMode

from handoff.adapters.azure_storage.clients import StorageClients, encode_key, storage_errors
from handoff.domain.shared_memory.polling import PollCursor, PolledHandoff, PolledRecord
from handoff.settings import SHARED_MEMORY_TABLE

MAX_INDEXED = 200


def _dest_partition(backend: str, destination: str) -> str:
    return encode_key(f"dest|{backend.lower()}|{destination}")


def _entry_partition(backend: str) -> str:
    return encode_key(f"human|{backend.lower()}")


def _poll_partition(backend: str) -> str:
    return encode_key(f"poll|{backend.lower()}")


# Between a record and a handoff id in the key of an investigation's row.
_SEPARATOR = "!"


def _record_row(destination: str) -> str:
    """The key of a record's poll-state row: the record percent-encoded, its ``!`` too (``%21``), so no
    record's key is ever another record's investigation row, whatever a caller named as a record. The
    records vendors have (``owner/repo#7``, ``PT4KHLK``, ``OPS-12``, a sys_id) hold no ``!``: their keys
    are the ones stored before ``!`` was encoded."""
    return encode_key(destination).replace(_SEPARATOR, "%21")


def _handoff_row(destination: str, handoff_id: str) -> str:
    """The key of an investigation's row on a record: the record's key, ``!``, the handoff id. The
    record's key holds no ``!``, so the first one ends it: the key names one record and one handoff.
    ``!`` sorts before every character of a record key: a record's rows are next to each other."""
    return f"{_record_row(destination)}{_SEPARATOR}{encode_key(handoff_id)}"


def _utc(value: object) -> datetime | None:
    if not isinstance(value, datetime):
        return None
    return value if value.tzinfo else value.replace(tzinfo=UTC)


class TableInboundStore:
    """Implements :class:`handoff.ports.InboundStore`, :class:`handoff.ports.DestinationIndex` and
    :class:`handoff.ports.PollIndex`."""

    def __init__(self, clients: StorageClients, clock: Callable[[], datetime] | None = None) -> None:
        self.table = clients.table(SHARED_MEMORY_TABLE)
        self.clock = clock or (lambda: datetime.now(UTC))

    def index_destination(self, backend: str, destination: str, handoff_id: str, poll: bool = False) -> None:
        if poll:
            # First, so a crash between the two leaves an index row the next write adds to, not one
            # that is never polled.
            polled = {
                "PartitionKey": _poll_partition(backend),
                "RowKey": _handoff_row(destination, handoff_id),
            }
            values = {"Destination": destination, "HandoffId": handoff_id, "IndexedAt": self.clock()}
            with storage_errors(), contextlib.suppress(ResourceExistsError):
                self.table.create_entity({**polled, **values})
        entity = {"PartitionKey": _dest_partition(backend, destination), "RowKey": encode_key(handoff_id)}
        with storage_errors(), contextlib.suppress(ResourceExistsError):
            self.table.create_entity({**entity, "HandoffId": handoff_id})

    def handoffs_at(self, backend: str, destination: str) -> list[str]:
        with storage_errors():
            rows = self.table.query_entities(
                "PartitionKey eq @pk",
                parameters={"pk": _dest_partition(backend, destination)},
                select=["HandoffId"],
                results_per_page=MAX_INDEXED,
            )
            found = []
            for row in rows:
                found.append(str(row["HandoffId"]))
                if len(found) >= MAX_INDEXED:
                    break
            return found

    def claim_entry(self, backend: str, entry_id: str, values: dict[str, str | datetime]) -> bool:
        entity = {"PartitionKey": _entry_partition(backend), "RowKey": encode_key(entry_id), **values}
        with storage_errors():
            try:
                self.table.create_entity(entity)
            except ResourceExistsError:
                return False
        return True

    def release_entry(self, backend: str, entry_id: str) -> None:
        with storage_errors(), contextlib.suppress(ResourceNotFoundError):
            self.table.delete_entity(_entry_partition(backend), encode_key(entry_id))

    # -------------------------------------------------------------- polling

    def polled_records(self, backend: str, limit: int) -> list[PolledRecord]:
        handoffs: dict[str, list[PolledHandoff]] = {}
        states: dict[str, TableEntity] = {}
        with storage_errors():
            rows = self.table.query_entities(
                "PartitionKey eq @pk", parameters={"pk": _poll_partition(backend)}, results_per_page=1000
            )
            for row in rows:
                destination = str(row.get("Destination") or "")
                if destination not in handoffs and len(handoffs) >= limit:
                    break  # rows come record by record: every record listed is whole
                found = handoffs.setdefault(destination, [])
                if row.get("HandoffId"):
                    indexed = _utc(row.get("IndexedAt")) or datetime.now(UTC)
                    found.append(PolledHandoff(str(row["HandoffId"]), indexed))
                else:
                    states[destination] = row
        return [
            _record(destination, found, states.get(destination))
            for destination, found in handoffs.items()
            if found
        ]

    def claim_poll(self, backend: str, record: PolledRecord, now: datetime) -> bool:
        entity = {
            "PartitionKey": _poll_partition(backend),
            "RowKey": _record_row(record.destination),
            "Destination": record.destination,
            "PolledAt": now,
        }
        with storage_errors():
            try:
                if not record.version:
                    self.table.create_entity(entity)
                else:
                    self.table.update_entity(
                        entity,
                        mode=UpdateMode.MERGE,
                        etag=record.version,
                        match_condition=MatchConditions.IfNotModified,
                    )
            except (ResourceExistsError, ResourceModifiedError, ResourceNotFoundError):
                return False  # another instance polled it since it was listed
        return True

    def save_cursor(self, backend: str, destination: str, cursor: PollCursor) -> None:
        entity = {
            "PartitionKey": _poll_partition(backend),
            "RowKey": _record_row(destination),
            "Destination": destination,
            "Since": cursor.since,
            "Seen": json.dumps(list(cursor.seen)),
        }
        with storage_errors():
            self.table.upsert_entity(entity, mode=UpdateMode.MERGE)

    def forget(self, backend: str, destination: str, handoff_ids: list[str], *, whole: bool) -> None:
        rows: Iterable[str] = [_handoff_row(destination, handoff_id) for handoff_id in handoff_ids]
        if whole:
            rows = [*rows, _record_row(destination)]
        for row in rows:
            with storage_errors(), contextlib.suppress(ResourceNotFoundError):
                self.table.delete_entity(_poll_partition(backend), row)


def _record(destination: str, handoffs: list[PolledHandoff], state: TableEntity | None) -> PolledRecord:
    """A polled record from its rows (``state`` is its poll-state entity, or None before a poll)."""
    if state is None:
        return PolledRecord(destination, tuple(handoffs))
    since = _utc(state.get("Since"))
    try:
        seen = tuple(str(item) for item in json.loads(state.get("Seen") or "[]"))
    except ValueError:
        seen = ()
    return PolledRecord(
        destination,
        tuple(handoffs),
        polled_at=_utc(state.get("PolledAt")),
        cursor=PollCursor(since, seen) if since is not None else None,
        version=str(state.metadata["etag"]),
    )
