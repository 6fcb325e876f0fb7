"""Azure Table Storage adapter of :class:`handoff.alert_service.AlertStore` (table ``handoffalerts``).

Rows: ``alert-<key>/alert`` (one per alert id, inserted if absent: the atomic dedupe), ``storm-<agent>/state``
and ``notes-<handoff id>/state`` (updated with ETags), and ``alert-<key>/event-...`` (insert-only log of
alerts that opened no handoff). Documents are JSON split over ``Doc0..DocN`` like the handoff table's.
"""

from __future__ import annotations

import json
import random
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, TypeVar

from azure.core import MatchConditions
from azure.core.exceptions import ResourceExistsError, ResourceModifiedError, ResourceNotFoundError
from azure.data.tables import UpdateMode
from pydantic import BaseModel

from handoff.adapters.storage import StorageClients, _chunks, _doc, storage_errors
from handoff.service import StorageUnavailable
from handoff.settings import ALERT_TABLE

ModelT = TypeVar("ModelT", bound=BaseModel)
MAX_TRIES = 200  # storm state is one row per target: under a storm many receivers write it at once


class TableAlertStore:
    """Implements :class:`handoff.alert_service.AlertStore`."""

    def __init__(self, clients: StorageClients) -> None:
        self.table = clients.table(ALERT_TABLE)

    @staticmethod
    def _entity(partition: str, row: str, doc: BaseModel) -> dict[str, Any]:
        return {"PartitionKey": partition, "RowKey": row, **_chunks(doc.model_dump_json())}

    def insert(self, partition: str, row: str, doc: BaseModel) -> bool:
        try:
            with storage_errors():
                self.table.create_entity(self._entity(partition, row, doc))
        except ResourceExistsError:
            return False
        return True

    def read(self, partition: str, row: str, model: type[ModelT]) -> ModelT | None:
        try:
            with storage_errors():
                entity = self.table.get_entity(partition, row)
        except ResourceNotFoundError:
            return None
        return model.model_validate_json(_doc(entity))

    def update(
        self, partition: str, row: str, model: type[ModelT], mutate: Callable[[ModelT | None], ModelT | None]
    ) -> ModelT | None:
        for attempt in range(MAX_TRIES):
            try:
                with storage_errors():
                    entity = self.table.get_entity(partition, row)
            except ResourceNotFoundError:
                entity = None
            current = model.model_validate_json(_doc(entity)) if entity is not None else None
            new = mutate(current)
            if new is None:
                return current
            try:
                with storage_errors():
                    if entity is None:
                        self.table.create_entity(self._entity(partition, row, new))
                    else:
                        self.table.update_entity(
                            self._entity(partition, row, new),
                            mode=UpdateMode.REPLACE,
                            etag=entity.metadata["etag"],
                            match_condition=MatchConditions.IfNotModified,
                        )
            except (ResourceModifiedError, ResourceExistsError):
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
