"""The handoff store on Azure Table Storage (Azurite locally): table ``handoffs`` in storage layout 2
(one partition per handoff: see :mod:`~handoff.adapters.azure_storage.layout`; reads and writes through
this process's copies: :mod:`~handoff.adapters.azure_storage.partitions`), and the thread links (table
``handofflinks``, partition ``<agent>|<thread id>``).
"""

from __future__ import annotations

import base64
import contextlib
import secrets
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any

from azure.core.exceptions import ResourceExistsError, ResourceNotFoundError
from azure.data.tables import TableTransactionError

from handoff.adapters.azure_storage.chains import member_entity, slot_entity
from handoff.adapters.azure_storage.clients import (
    StorageClients,
    already_exists,
    encode_key,
    storage_errors,
)
from handoff.adapters.azure_storage.layout import (
    AUDIT_END,
    BROKER_PARTITION,
    LayoutCheck,
    audit_row,
    claim_row,
    handback_row,
)
from handoff.adapters.azure_storage.partitions import MAX_OCC_RETRIES, HandoffRows, Operation, Plan, RowExists
from handoff.adapters.azure_storage.rows import (
    StateCopy,
    audit_entity,
    audit_event,
    chain_events,
    handback_entity,
    load,
    request_entity,
    state_entity,
    weight,
)
from handoff.domain.chains import ChainMember
from handoff.domain.models import AuditEvent
from handoff.domain.records import (
    HandbackDelivery,
    HandoffRecord,
    HandoffState,
    LinkRecord,
    NewEvent,
    StoredHandback,
    StoredRequest,
)
from handoff.ports import AuditEvents, StorageUnavailable
from handoff.settings import HANDOFF_TABLE, LINK_TABLE


class TableHandoffStore:
    """Implements :class:`handoff.ports.HandoffStore` on Azure Table Storage."""

    def __init__(self, clients: StorageClients, probe: StorageClients | None = None) -> None:
        self.table = clients.table(HANDOFF_TABLE)
        self.links = clients.table(LINK_TABLE)
        self._probe = (probe or clients).table(HANDOFF_TABLE)
        self._layout = LayoutCheck(clients)
        self._rows = HandoffRows(self.table)

    # ------------------------------------------------------------------ the record

    def create(
        self,
        stored: StoredRequest,
        state: HandoffState,
        events: Sequence[NewEvent] = (),
        chain: ChainMember | None = None,
    ) -> bool:
        self._layout.ensure()
        handoff_id = stored.id
        written = chain_events(handoff_id, 0, None, list(events))
        tail = written[-1] if written else None
        request = request_entity(stored)
        operations: list[Operation] = [
            ("create", request),
            ("create", state_entity(handoff_id, state, len(written), tail.hash if tail else None)),
            *(("create", audit_entity(handoff_id, event)) for event in written),
        ]
        if chain is not None:
            if chain.root_id != handoff_id:
                raise ValueError("only the root of a chain starts it in its own partition")
            operations += [("create", member_entity(chain)), ("create", slot_entity(chain, 1))]
        with storage_errors():
            try:
                result = self.table.submit_transaction(operations)
            except TableTransactionError as exc:
                if already_exists(exc):
                    return False
                raise
        etag = str(result[1]["etag"])
        kept = state.model_copy(deep=True)  # the caller's object may change; the copy must not
        copy = StateCopy(kept, etag, len(written), tail.hash if tail else None, stored, (), weight(request))
        self._rows.copies.put(handoff_id, copy)
        return True

    def get(self, handoff_id: str, *, fresh: bool = True) -> HandoffRecord | None:
        self._layout.ensure()
        if not fresh:
            copy = self._rows.copies.get(handoff_id)
            record = copy.record() if copy is not None else None
            if record is not None:
                return record
        return self._rows.read_record(handoff_id)

    # ------------------------------------------------------------------ writes

    def update_state(
        self,
        handoff_id: str,
        mutate: Callable[[HandoffState], None],
        events: AuditEvents = (),
        *,
        version: str | None = None,
    ) -> HandoffState:
        self._layout.ensure()

        def plan(state: HandoffState) -> Plan:
            mutate(state)
            return Plan(events=events(state) if callable(events) else events)

        copy, _ = self._rows.write(handoff_id, plan, version)
        return copy.state.model_copy(deep=True)

    def append_audit(self, handoff_id: str, type: str, actor: str, details: dict[str, Any]) -> AuditEvent:
        self._layout.ensure()
        return self._rows.append(handoff_id, NewEvent(type, actor, details))

    def add_handback(
        self,
        handoff_id: str,
        make: Callable[[int], StoredHandback],
        claim: str | None = None,
        events: Callable[[StoredHandback], Sequence[NewEvent]] | None = None,
    ) -> tuple[StoredHandback, bool]:
        self._layout.ensure()
        made: list[StoredHandback] = []

        def plan(state: HandoffState) -> Plan:
            made.clear()
            handback = make(1 + max(state.handbacks, default=0))
            made.append(handback)
            state.handbacks.setdefault(handback.seq, HandbackDelivery())
            state.updated_at = handback.received_at
            creates = [handback_entity(handoff_id, handback)]
            if claim is not None:
                # First, so that a claim someone holds is told apart from a hand-back number taken.
                claim_entity = {"PartitionKey": handoff_id, "RowKey": claim_row(claim), "Seq": handback.seq}
                creates.insert(0, claim_entity)
            return Plan(events=events(handback) if events else (), creates=creates, handback=handback)

        for _ in range(MAX_OCC_RETRIES):
            try:
                self._rows.write(handoff_id, plan)
            except RowExists as exists:
                if claim is not None and exists.index == 0:
                    held = self._claimed(handoff_id, claim)
                    if held is not None:
                        return held, False
                self._rows.copies.drop(handoff_id)  # a hand-back this copy did not know of: read again
                continue
            return made[0], True
        raise StorageUnavailable(f"hand-backs of {handoff_id} kept changing; gave up")

    def _claimed(self, handoff_id: str, claim: str) -> StoredHandback | None:
        with storage_errors():
            try:
                held = self.table.get_entity(handoff_id, claim_row(claim))
            except ResourceNotFoundError:
                return None
            entity = self.table.get_entity(handoff_id, handback_row(int(held["Seq"])))
        return load(StoredHandback, entity)

    # ------------------------------------------------------------------ the audit

    def list_audit(self, handoff_id: str, after: int = 0, limit: int | None = None) -> list[AuditEvent]:
        self._layout.ensure()
        parameters = {"pk": handoff_id, "after": audit_row(after), "end": AUDIT_END}
        events: list[AuditEvent] = []
        with storage_errors():
            # Rows come back in RowKey order (zero-padded sequence numbers) within the partition.
            for entity in self.table.query_entities(
                "PartitionKey eq @pk and RowKey gt @after and RowKey lt @end",
                parameters=parameters,
                results_per_page=limit or 1000,
            ):
                events.append(audit_event(entity))
                if limit is not None and len(events) >= limit:
                    break
        return events

    # ------------------------------------------------------------------ links, sweeper, health, secrets

    def add_links(self, links: list[LinkRecord]) -> None:
        self._layout.ensure()
        with storage_errors():
            for link in links:
                self.links.upsert_entity(
                    {
                        "PartitionKey": f"{link.agent}|{encode_key(link.thread_id)}",
                        "RowKey": f"{link.handoff_id}|{link.relation}",
                        "Doc0": link.model_dump_json(),
                    }
                )

    def links_of(self, agent: str, thread_id: str) -> list[LinkRecord]:
        self._layout.ensure()
        with storage_errors():
            rows = self.links.query_entities(
                "PartitionKey eq @pk", parameters={"pk": f"{agent}|{encode_key(thread_id)}"}
            )
            return [LinkRecord.model_validate_json(row["Doc0"]) for row in rows]

    def stale_pending(self, older_than: datetime) -> list[str]:
        self._layout.ensure()
        with storage_errors():
            rows = self.table.query_entities(
                "RowKey eq 'state' and PendingWork eq true and UpdatedAt lt @cutoff",
                parameters={"cutoff": older_than},
                select=["PartitionKey"],
            )
            return [row["PartitionKey"] for row in rows]

    def ping(self) -> None:
        with storage_errors():
            next(iter(self._probe.query_entities("PartitionKey eq 'health'", results_per_page=1)), None)
        self._layout.ensure()

    def secret(self, name: str) -> bytes:
        self._layout.ensure()
        # Insert-if-absent, then read: every instance ends up with the one secret the first one wrote.
        entity = {"PartitionKey": BROKER_PARTITION, "RowKey": name, "Secret": secrets.token_urlsafe(32)}
        with storage_errors():
            with contextlib.suppress(ResourceExistsError):
                self.table.create_entity(entity)
            stored = self.table.get_entity(BROKER_PARTITION, name)
        return base64.urlsafe_b64decode(stored["Secret"] + "=" * (-len(stored["Secret"]) % 4))
