"""Reads and writes of a handoff's partition in table ``handoffs``, from this process's copies.

Every write of a handoff is one entity-group transaction: the state row, conditioned on its ETag, with
the rows that go with the change (its audit events, a hand-back and its claim). The state row carries
the audit's tail, so events are numbered and hash-chained without reading the audit, and the ETag makes
their numbering atomic. Writes start from the copy of the state this process last read or wrote
(:class:`~handoff.adapters.azure_storage.rows.StateCopies`) and read the state again only when the ETag
says someone else wrote it since.
"""

from __future__ import annotations

import functools
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from azure.core import MatchConditions
from azure.core.exceptions import ResourceModifiedError, ResourceNotFoundError
from azure.data.tables import TableClient, TableTransactionError, UpdateMode

from handoff.adapters.azure_storage.clients import KeyedLocks, error_code, storage_errors
from handoff.adapters.azure_storage.layout import HANDBACK_PREFIX, REQUEST_ROW, STATE_ROW
from handoff.adapters.azure_storage.rows import (
    StateCopies,
    StateCopy,
    audit_entity,
    chain_events,
    load,
    state_entity,
    weight,
)
from handoff.domain.models import AuditEvent
from handoff.domain.records import (
    HandoffRecord,
    HandoffState,
    NewEvent,
    StoredHandback,
    StoredRequest,
    state_version,
)
from handoff.ports import StateChanged, StorageUnavailable

MAX_OCC_RETRIES = 50
# Audit events appended on their own that one transaction takes at most: with the state row it stays
# within an entity-group transaction's 100 operations and 4 MiB (an event's details are capped).
MAX_GROUP = 40
Operation = tuple[str, dict[str, Any]] | tuple[str, dict[str, Any], dict[str, Any]]


@dataclass
class Plan:
    """What one write makes of the state it is given: the audit events to append, the rows to create
    with it (before the state row, so a conflict on one of them is told apart by its index), and what
    the caller wants back."""

    events: Sequence[NewEvent] = ()
    creates: list[dict[str, Any]] = field(default_factory=list)
    handback: StoredHandback | None = None


class RowExists(Exception):
    """One of the rows a write creates exists (``index`` into :attr:`Plan.creates`)."""

    def __init__(self, index: int) -> None:
        super().__init__(index)
        self.index = index


def _appending(drafts: list[NewEvent], state: HandoffState) -> Plan:
    """The plan of appends alone: the state as it is, with the events."""
    return Plan(events=drafts)


@dataclass
class _Ticket:
    """An audit event waiting to be appended, and the event once it is."""

    draft: NewEvent
    event: AuditEvent | None = None


class HandoffRows:
    """The rows of handoffs' partitions, read and written through this process's copies."""

    def __init__(self, table: TableClient) -> None:
        self.table = table
        self.copies = StateCopies()
        # Writers of one handoff in this process take turns, so they do not race each other's ETags.
        self._writers = KeyedLocks()
        # Audit events waiting to be appended on their own, per handoff (written together).
        self._waiting: dict[str, list[_Ticket]] = {}
        self._waiting_lock = threading.Lock()

    def read_record(self, handoff_id: str) -> HandoffRecord | None:
        """The request, the state and the hand-backs: the row-key range ``handback|`` .. ``state``."""
        with storage_errors():
            entities = list(
                self.table.query_entities(
                    "PartitionKey eq @pk and RowKey ge @low and RowKey le @high",
                    parameters={"pk": handoff_id, "low": HANDBACK_PREFIX, "high": STATE_ROW},
                )
            )
        by_key = {entity["RowKey"]: entity for entity in entities}
        if REQUEST_ROW not in by_key or STATE_ROW not in by_key:
            return None
        handbacks = sorted(
            (load(StoredHandback, e) for key, e in by_key.items() if key.startswith(HANDBACK_PREFIX)),
            key=lambda hb: hb.seq,
        )
        copy = replace(
            StateCopy.of(by_key[STATE_ROW]),
            stored=load(StoredRequest, by_key[REQUEST_ROW]),
            handbacks=tuple(handbacks),
            weight=weight(by_key[REQUEST_ROW]),
        )
        self.copies.put(handoff_id, copy)
        return copy.record()

    def read_state(self, handoff_id: str) -> StateCopy:
        """The state row alone (so a state can be changed even when the request cannot be read)."""
        with storage_errors():
            entity = self.table.get_entity(handoff_id, STATE_ROW)
        copy = StateCopy.of(entity).with_record_of(self.copies.get(handoff_id))
        self.copies.put(handoff_id, copy)
        return copy

    def append(self, handoff_id: str, draft: NewEvent) -> AuditEvent:
        """Append one audit event on its own. Appends to one handoff that wait for each other in this
        process (an alert storm joining one handoff) are written together: whoever writes next writes
        every event waiting, up to :data:`MAX_GROUP` of them, in one transaction."""
        ticket = _Ticket(draft)
        with self._waiting_lock:
            self._waiting.setdefault(handoff_id, []).append(ticket)
        with self._writers.hold(handoff_id):
            while ticket.event is None:
                group = self._take_waiting(handoff_id)
                plan = functools.partial(_appending, [waiting.draft for waiting in group])
                try:
                    _, events = self._write_held(handoff_id, plan, None)
                except Exception:
                    # Only this caller's append failed here; the others try again on their own.
                    self._put_back(handoff_id, [t for t in group if t is not ticket])
                    raise
                for waiting, event in zip(group, events, strict=True):
                    waiting.event = event
        return ticket.event

    def _take_waiting(self, handoff_id: str) -> list[_Ticket]:
        with self._waiting_lock:
            waiting = self._waiting.get(handoff_id, [])
            group, rest = waiting[:MAX_GROUP], waiting[MAX_GROUP:]
            if rest:
                self._waiting[handoff_id] = rest
            else:
                self._waiting.pop(handoff_id, None)
            return group

    def _put_back(self, handoff_id: str, tickets: list[_Ticket]) -> None:
        if tickets:
            with self._waiting_lock:
                self._waiting[handoff_id] = [*tickets, *self._waiting.get(handoff_id, [])]

    def write(
        self, handoff_id: str, plan: Callable[[HandoffState], Plan], version: str | None = None
    ) -> tuple[StateCopy, list[AuditEvent]]:
        """Write what ``plan`` makes of the state (and its rows and events) in one transaction on the
        state's ETag. Without ``version``: from this process's copy, re-read and re-planned when
        someone wrote in between (a plan that raises on a copy is given the stored state before its
        error counts). With ``version`` (a :func:`state_version`): only while the state is that version
        (audit events written meanwhile do not change it), else :class:`StateChanged`."""
        with self._writers.hold(handoff_id):
            return self._write_held(handoff_id, plan, version)

    def _write_held(
        self, handoff_id: str, plan: Callable[[HandoffState], Plan], version: str | None
    ) -> tuple[StateCopy, list[AuditEvent]]:
        copy = self.copies.get(handoff_id)
        read_now = False
        for attempt in range(MAX_OCC_RETRIES):
            if copy is None:
                copy, read_now = self.read_state(handoff_id), True
            if version is not None and state_version(copy.state) != version:
                raise StateChanged(handoff_id)  # this process's copies only move on: so has storage
            state = copy.state.model_copy(deep=True)
            try:
                planned = plan(state)
            except Exception:
                if read_now or version is not None:
                    raise
                copy = None  # decided on this process's copy: decide again on the stored state
                continue
            try:
                return self._commit(handoff_id, copy, state, planned)
            except ResourceNotFoundError:
                self.copies.drop(handoff_id)
                raise
            except ResourceModifiedError:
                # Someone else wrote it (an audit event, or a change): plan again on the stored state
                # (a write on a version: only while the state is still that version).
                self.copies.drop(handoff_id)
                if read_now:
                    time.sleep(min(0.5, 0.01 * (attempt + 1)))  # a concurrent writer won
                copy, read_now = None, False
        raise StorageUnavailable(
            f"state of {handoff_id} kept changing; gave up after {MAX_OCC_RETRIES} tries"
        )

    def _commit(
        self, handoff_id: str, copy: StateCopy, state: HandoffState, planned: Plan
    ) -> tuple[StateCopy, list[AuditEvent]]:
        """One transaction: ``planned.creates``, the state row on the copy's ETag, the events."""
        events = chain_events(handoff_id, copy.audit_seq, copy.audit_hash, list(planned.events))
        tail = events[-1] if events else None
        row = state_entity(
            handoff_id, state, tail.seq if tail else copy.audit_seq, tail.hash if tail else copy.audit_hash
        )
        condition: dict[str, Any] = {
            "mode": UpdateMode.REPLACE,
            "etag": copy.etag,
            "match_condition": MatchConditions.IfNotModified,
        }
        with storage_errors():
            if not planned.creates and not events:
                etag = self.table.update_entity(row, **condition)["etag"]
            else:
                operations: list[Operation] = [
                    *(("create", entity) for entity in planned.creates),
                    ("update", row, condition),
                    *(("create", audit_entity(handoff_id, event)) for event in events),
                ]
                try:
                    result = self.table.submit_transaction(operations)
                except TableTransactionError as exc:
                    code = error_code(exc)
                    if code == "UpdateConditionNotSatisfied":
                        raise ResourceModifiedError(exc.message) from exc
                    if code == "EntityAlreadyExists" and exc.index < len(planned.creates):
                        raise RowExists(exc.index) from exc
                    if code == "ResourceNotFound":
                        raise ResourceNotFoundError(exc.message) from exc
                    raise
                etag = result[len(planned.creates)]["etag"]
        written = copy.written(state, str(etag), events)
        if planned.handback is not None and written.handbacks is not None:
            written = replace(written, handbacks=(*written.handbacks, planned.handback))
        self.copies.put(handoff_id, written)
        return written, events
