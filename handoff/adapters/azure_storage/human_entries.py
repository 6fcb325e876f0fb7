"""Humans in the loop on Table Storage (table ``sharedmemory``, beside the writes' state).

* ``dest|<backend>|<record>`` / ``<handoff id>``: the destination index, one row per handoff the broker
  wrote to (or that names) the record; a webhook's entry is matched with one single-partition query;
* ``human|<backend>`` / ``<entry id>``: entries received, inserted if absent, so a replayed delivery,
  a vendor's retry and a poll of the same entry are taken once.
"""

from __future__ import annotations

import contextlib
from datetime import datetime

from azure.core.exceptions import ResourceExistsError, ResourceNotFoundError

from handoff.adapters.azure_storage.handoffs import StorageClients, encode_key, storage_errors
from handoff.settings import SHARED_MEMORY_TABLE

MAX_INDEXED = 200


def _dest_partition(backend: str, destination: str) -> str:
    return encode_key(f"dest|{backend.lower()}|{destination}")


def _entry_partition(backend: str) -> str:
    return encode_key(f"human|{backend.lower()}")


class TableInboundStore:
    """Implements :class:`handoff.ports.InboundStore` and :class:`handoff.ports.DestinationIndex`."""

    def __init__(self, clients: StorageClients) -> None:
        self.table = clients.table(SHARED_MEMORY_TABLE)

    def index_destination(self, backend: str, destination: str, handoff_id: str) -> None:
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
