"""Azure Table Storage adapter of :class:`handoff.ports.AlertStore` (table ``handoffalerts``).

Rows: ``alert-<key>/alert`` (one per alert id, inserted if absent: the atomic dedupe), ``storm-<agent>/state``
and ``notes-<handoff id>/state`` (updated with ETags), and ``alert-<key>/event-...`` (insert-only log of
alerts that opened no handoff). Documents are JSON split over ``Doc0..DocN`` like the handoff table's.
"""

from __future__ import annotations

import json
import random
import threading
import time
import uuid
from collections import OrderedDict
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, TypeVar

from azure.core import MatchConditions
from azure.core.exceptions import ResourceExistsError, ResourceModifiedError, ResourceNotFoundError
from azure.data.tables import UpdateMode
from pydantic import BaseModel

from handoff.adapters.azure_storage.clients import KeyedLocks, StorageClients, chunks, joined, storage_errors
from handoff.ports import StorageUnavailable
from handoff.settings import ALERT_TABLE

ModelT = TypeVar("ModelT", bound=BaseModel)
MAX_TRIES = 200
CACHE_ROWS = 5_000  # storm state is one row per target: under a storm many receivers write it at once


class TableAlertStore:
    """Implements :class:`handoff.ports.AlertStore`."""

    def __init__(self, clients: StorageClients) -> None:
        self.table = clients.table(ALERT_TABLE)
        self._rows = KeyedLocks()
        # Last entity (with its ETag) this process read or wrote per row: the first write attempt of an
        # update uses it instead of reading again; a stale ETag just costs one re-read.
        self._latest: OrderedDict[str, tuple[dict[str, Any], str]] = OrderedDict()
        self._latest_lock = threading.Lock()

    def _remember(self, key: str, entity: dict[str, Any] | None, etag: str | None = None) -> None:
        with self._latest_lock:
            if entity is None or etag is None:
                self._latest.pop(key, None)
                return
            self._latest[key] = (dict(entity), etag)
            self._latest.move_to_end(key)
            while len(self._latest) > CACHE_ROWS:
                self._latest.popitem(last=False)

    def _cached(self, key: str) -> tuple[dict[str, Any], str] | None:
        with self._latest_lock:
            return self._latest.get(key)

    @staticmethod
    def _entity(partition: str, row: str, doc: BaseModel) -> dict[str, Any]:
        return {"PartitionKey": partition, "RowKey": row, **chunks(doc.model_dump_json())}

    def insert(self, partition: str, row: str, doc: BaseModel) -> bool:
        try:
            with storage_errors():
                self.table.create_entity(self._entity(partition, row, doc))
        except ResourceExistsError:
            return False
        return True

    def read(self, partition: str, row: str, model: type[ModelT], *, fresh: bool = True) -> ModelT | None:
        key = f"{partition}/{row}"
        cached = None if fresh else self._cached(key)
        if cached is not None:
            return model.model_validate_json(joined(cached[0]))
        try:
            with storage_errors():
                entity = self.table.get_entity(partition, row)
        except ResourceNotFoundError:
            return None
        self._remember(key, entity, entity.metadata.get("etag"))
        return model.model_validate_json(joined(entity))

    def update(
        self, partition: str, row: str, model: type[ModelT], mutate: Callable[[ModelT | None], ModelT | None]
    ) -> ModelT | None:
        # Writers of one row in this process take turns; ETags settle races with other processes.
        with self._rows.hold(f"{partition}/{row}"):
            return self._update(partition, row, model, mutate)

    def _update(
        self, partition: str, row: str, model: type[ModelT], mutate: Callable[[ModelT | None], ModelT | None]
    ) -> ModelT | None:
        key = f"{partition}/{row}"
        use_cache = True
        for attempt in range(MAX_TRIES):
            cached = self._cached(key) if use_cache else None
            use_cache = False
            entity: dict[str, Any] | None
            etag: str | None = None
            if cached is not None:
                entity, etag = cached
            else:
                try:
                    with storage_errors():
                        got = self.table.get_entity(partition, row)
                    entity, etag = got, got.metadata.get("etag")
                except ResourceNotFoundError:
                    entity = None
            current = model.model_validate_json(joined(entity)) if entity is not None else None
            new = mutate(current)
            if new is None:
                if cached is not None:
                    continue  # decide "nothing to write" on fresh data only
                return current
            try:
                written = self._entity(partition, row, new)
                with storage_errors():
                    if entity is None:
                        meta = self.table.create_entity(written)
                    else:
                        meta = self.table.update_entity(
                            written,
                            mode=UpdateMode.REPLACE,
                            etag=etag,
                            match_condition=MatchConditions.IfNotModified,
                        )
                self._remember(key, written, meta.get("etag"))
            except (ResourceModifiedError, ResourceExistsError):
                self._remember(key, None)
                # A concurrent writer won: re-read and re-apply (jittered, so a crowd spreads out).
                time.sleep(min(0.2, 0.005 * (attempt + 1)) * (0.5 + random.random()))  # noqa: S311
                continue
            return new
        raise StorageUnavailable(f"{partition}/{row} kept changing; gave up after {MAX_TRIES} tries")

    def log(self, partition: str, type: str, details: dict[str, Any]) -> None:
        at = datetime.now(UTC)
        entity = {
            "PartitionKey": partition,
            "RowKey": f"event-{at.strftime('%Y%m%dT%H%M%S%f')}-{uuid.uuid4().hex[:8]}",
            "Type": type,
            "At": at,
            "Details": json.dumps(details, ensure_ascii=False, default=str)[:16_000],
        }
        with storage_errors():
            self.table.create_entity(entity)
