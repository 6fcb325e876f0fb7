"""Shared-memory state on Table Storage (table ``sharedmemory``) and its queue.

* ``w|<handoff id>`` / ``<point>:<seq>|<backend>``: the state of one write (merged, never deleted);
* ``gate`` / ``<key>``: coordination of all broker instances, updated with ETags (If-Match): a
  backend's rate-limit hold (``BlockedUntil``), GitHub content-write spacing per repository
  (``NextSlot``, ``WindowStart``, ``WindowCount``) and the highest issue number seen (``HighWater``);
* ``chain`` / ``<backend>|<root id>``: the issue opened for an investigation chain.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar, cast

from azure.core import MatchConditions
from azure.core.exceptions import ResourceExistsError, ResourceModifiedError, ResourceNotFoundError
from azure.data.tables import UpdateMode

from handoff.adapters.azure_storage.clients import StorageClients, encode_key, storage_errors
from handoff.domain.shared_memory.writes import WriteRow
from handoff.settings import SHARED_MEMORY_TABLE

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
MAX_TRIES = 50
ResultT = TypeVar("ResultT")
# A gate change: from the gate's entity, the values to write (None: write nothing) and the result.
GateChange = Callable[[dict[str, Any]], tuple[dict[str, Any] | None, ResultT]]


def _utc(value: object) -> datetime | None:
    if not isinstance(value, datetime):
        return None
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def _rows(entities: Iterable[Any]) -> list[WriteRow]:
    # A write's row holds what put_write merged into it (plus the table's own keys).
    return [cast(WriteRow, dict(entity)) for entity in entities]


class TableWriteState:
    """Implements :class:`handoff.ports.WriteStateStore`."""

    def __init__(self, clients: StorageClients) -> None:
        self.table = clients.table(SHARED_MEMORY_TABLE)

    # -------------------------------------------------------------- writes

    def get_write(self, handoff_id: str, key: str) -> WriteRow | None:
        with storage_errors():
            try:
                entity = self.table.get_entity(f"w|{handoff_id}", encode_key(key))
            except ResourceNotFoundError:
                return None
        return _rows([entity])[0]

    def put_write(self, handoff_id: str, key: str, values: WriteRow) -> None:
        entity: dict[str, Any] = {"PartitionKey": f"w|{handoff_id}", "RowKey": encode_key(key), "Key": key}
        entity.update({k: ("" if v is None else v) for k, v in values.items()})
        with storage_errors():
            self.table.upsert_entity(entity, mode=UpdateMode.MERGE)

    def list_writes(self, handoff_id: str) -> list[WriteRow]:
        with storage_errors():
            rows = self.table.query_entities("PartitionKey eq @pk", parameters={"pk": f"w|{handoff_id}"})
            return _rows(rows)

    def stale_writes(self, older_than: datetime) -> list[WriteRow]:
        with storage_errors():
            rows = self.table.query_entities(
                "Status eq 'pending' and UpdatedAt lt @cutoff", parameters={"cutoff": older_than}
            )
            return _rows(row for row in rows if str(row.get("PartitionKey", "")).startswith("w|"))

    # -------------------------------------------------------------- gates (ETag-coordinated)

    def _update_gate(self, key: str, change: GateChange[ResultT]) -> ResultT:
        """Read-modify-write of one gate entity with If-Match; ``change(entity)`` returns
        ``(new_values or None, result)``."""
        row = encode_key(key)
        for attempt in range(MAX_TRIES):
            entity: dict[str, Any]
            etag: str | None
            with storage_errors():
                try:
                    found = self.table.get_entity("gate", row)
                    entity, etag = dict(found), found.metadata["etag"]
                except ResourceNotFoundError:
                    entity, etag = {"PartitionKey": "gate", "RowKey": row}, None
            values, result = change(dict(entity))
            if values is None:
                return result
            new = {**entity, **values, "PartitionKey": "gate", "RowKey": row}
            try:
                with storage_errors():
                    if etag is None:
                        self.table.create_entity(new)
                    else:
                        self.table.update_entity(
                            new,
                            mode=UpdateMode.REPLACE,
                            etag=etag,
                            match_condition=MatchConditions.IfNotModified,
                        )
            except (ResourceModifiedError, ResourceExistsError):
                time.sleep(min(0.2, 0.01 * (attempt + 1)))  # another instance won; read again
                continue
            return result
        raise RuntimeError(f"gate {key} kept changing")

    def reserve_slot(self, key: str, spacing: float, hourly_limit: int, now: datetime) -> float:
        def change(entity: dict[str, Any]) -> tuple[dict[str, Any] | None, float]:
            next_slot = _utc(entity.get("NextSlot")) or EPOCH
            window = _utc(entity.get("WindowStart")) or EPOCH
            count = int(entity.get("WindowCount") or 0)
            if now - window >= timedelta(hours=1):
                window, count = now, 0
            if count >= hourly_limit:
                return None, (window + timedelta(hours=1) - now).total_seconds()
            if next_slot > now:
                return None, (next_slot - now).total_seconds()
            values = {
                "NextSlot": now + timedelta(seconds=spacing),
                "WindowStart": window,
                "WindowCount": count + 1,
            }
            return values, 0.0

        return self._update_gate(key, change)

    def blocked_until(self, key: str) -> datetime | None:
        with storage_errors():
            try:
                entity = self.table.get_entity("gate", encode_key(key))
            except ResourceNotFoundError:
                return None
        return _utc(entity.get("BlockedUntil"))

    def block(self, key: str, until: datetime) -> None:
        def change(entity: dict[str, Any]) -> tuple[dict[str, Any] | None, None]:
            current = _utc(entity.get("BlockedUntil"))
            if current and current >= until:
                return None, None
            return {"BlockedUntil": until}, None

        self._update_gate(key, change)

    def get_hint(self, key: str) -> int:
        with storage_errors():
            try:
                return int(self.table.get_entity("gate", encode_key(key)).get("HighWater") or 0)
            except ResourceNotFoundError:
                return 0

    def set_hint(self, key: str, number: int) -> None:
        def change(entity: dict[str, Any]) -> tuple[dict[str, Any] | None, None]:
            if int(entity.get("HighWater") or 0) >= number:
                return None, None
            return {"HighWater": number}, None

        self._update_gate(key, change)

    # -------------------------------------------------------------- chain issues

    def claim_chain(self, key: str, now: datetime, lease_seconds: float) -> tuple[str, int | None, bool]:
        row = encode_key(key)
        for _ in range(MAX_TRIES):
            with storage_errors():
                try:
                    entity = self.table.get_entity("chain", row)
                except ResourceNotFoundError:
                    entity = None
            if entity is None:
                try:
                    with storage_errors():
                        self.table.create_entity(
                            {"PartitionKey": "chain", "RowKey": row, "Status": "creating", "ClaimedAt": now}
                        )
                    return "claimed", None, False
                except ResourceExistsError:
                    continue
            if entity.get("Status") == "created":
                return "created", int(entity["Number"]), False
            claimed = _utc(entity.get("ClaimedAt")) or EPOCH
            if now - claimed < timedelta(seconds=lease_seconds):
                return "busy", None, False
            try:
                with storage_errors():
                    self.table.update_entity(
                        {"PartitionKey": "chain", "RowKey": row, "Status": "creating", "ClaimedAt": now},
                        mode=UpdateMode.REPLACE,
                        etag=entity.metadata["etag"],
                        match_condition=MatchConditions.IfNotModified,
                    )
            except ResourceModifiedError:
                continue
            return "claimed", None, True
        return "busy", None, False

    def abandon_chain(self, key: str) -> None:
        with storage_errors():
            self.table.delete_entity("chain", encode_key(key))

    def release_chain(self, key: str) -> None:
        with storage_errors():
            self.table.upsert_entity(
                {
                    "PartitionKey": "chain",
                    "RowKey": encode_key(key),
                    "Status": "creating",
                    "ClaimedAt": EPOCH,
                },
                mode=UpdateMode.REPLACE,
            )

    def set_chain(self, key: str, number: int) -> None:
        with storage_errors():
            self.table.upsert_entity(
                {"PartitionKey": "chain", "RowKey": encode_key(key), "Status": "created", "Number": number},
                mode=UpdateMode.REPLACE,
            )
