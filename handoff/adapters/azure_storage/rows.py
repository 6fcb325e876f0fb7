"""The rows of a handoff's partition as Table entities (see :mod:`~handoff.adapters.azure_storage.layout`),
and the copies of handoffs this process last read or wrote."""

from __future__ import annotations

import json
import threading
from collections import OrderedDict
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any, TypeVar

from pydantic import BaseModel

from handoff.adapters.azure_storage.clients import chunks, joined
from handoff.adapters.azure_storage.layout import (
    REQUEST_ROW,
    STATE_ROW,
    audit_row,
    handback_row,
)
from handoff.domain.audit import audit_time, event_hash
from handoff.domain.errors import FieldError, PayloadTooLarge
from handoff.domain.models import AuditEvent
from handoff.domain.records import (
    HandoffRecord,
    HandoffState,
    NewEvent,
    StoredHandback,
    StoredRequest,
    has_pending_work,
    state_version,
)
from handoff.domain.redaction import redact_json

MAX_DETAIL_CHARS = 16_000
# An entity holds at most 1 MiB; leave room for the keys and the other properties of the row.
MAX_DOC_BYTES = 1_000_000
ModelT = TypeVar("ModelT", bound=BaseModel)


def weight(entity: dict[str, Any]) -> int:
    """The characters of the document an entity holds (what its copy weighs in memory, about)."""
    return sum(len(value) for key, value in entity.items() if key.startswith("Doc"))


def document(doc: BaseModel, what: str) -> str:
    """``doc`` as stored JSON, refused (413) when the entity could not hold it: Table Storage counts
    strings in UTF-16 and caps an entity at 1 MiB, and a body can grow when stored (``1e15`` is kept as
    ``1000000000000000.0``), so the check is on the stored form, not the request's bytes."""
    text = doc.model_dump_json()
    size = len(text.encode("utf-16-le"))
    if size > MAX_DOC_BYTES:
        raise PayloadTooLarge(
            f"the {what} would take {size} bytes of table storage as stored (UTF-16); the limit is "
            f"{MAX_DOC_BYTES} bytes",
            errors=[FieldError(field="/", message=f"larger than {MAX_DOC_BYTES} bytes as stored")],
        )
    return text


def load(model: type[ModelT], entity: dict[str, Any]) -> ModelT:
    """The document an entity holds in its ``Doc0..DocN`` properties."""
    return model.model_validate_json(joined(entity))


def request_entity(stored: StoredRequest) -> dict[str, Any]:
    """The ``request`` row."""
    return {
        "PartitionKey": stored.id,
        "RowKey": REQUEST_ROW,
        "SourceAgent": stored.source_agent,
        "TargetAgent": stored.target_agent,
        "RootId": stored.root_id,
        "CreatedAt": stored.created_at,
        **chunks(document(stored, "handoff request")),
    }


def state_entity(
    handoff_id: str, state: HandoffState, audit_seq: int, audit_hash: str | None
) -> dict[str, Any]:
    """The ``state`` row, with the audit's tail (the last event's number and hash)."""
    return {
        "PartitionKey": handoff_id,
        "RowKey": STATE_ROW,
        "Status": state.status,
        "UpdatedAt": state.updated_at,
        # Filtered on by the sweeper: work is left while the handoff is undelivered, its cross-link
        # or a hand-back waits to be posted.
        "PendingWork": has_pending_work(state),
        "AuditSeq": audit_seq,
        "AuditHash": audit_hash or "",
        **chunks(state.model_dump_json()),
    }


def handback_entity(handoff_id: str, handback: StoredHandback) -> dict[str, Any]:
    """A ``handback|NNNNN`` row."""
    return {
        "PartitionKey": handoff_id,
        "RowKey": handback_row(handback.seq),
        **chunks(document(handback, "hand-back")),
    }


def audit_entity(handoff_id: str, event: AuditEvent) -> dict[str, Any]:
    """An ``a|NNNNNNNNNN`` row."""
    return {
        "PartitionKey": handoff_id,
        "RowKey": audit_row(event.seq),
        "Type": event.type,
        "Actor": event.actor,
        "At": event.at,
        "Details": json.dumps(event.details, ensure_ascii=False),
        "Hash": event.hash,
        **({"PrevHash": event.prev_hash} if event.prev_hash else {}),
    }


def audit_event(entity: dict[str, Any]) -> AuditEvent:
    """The event an audit row holds."""
    return AuditEvent(
        seq=int(str(entity["RowKey"]).rsplit("|", 1)[1]),
        at=entity["At"],
        type=entity["Type"],
        actor=entity["Actor"],
        details=json.loads(entity["Details"]),
        hash=entity.get("Hash"),
        prev_hash=entity.get("PrevHash"),
    )


def stored_details(details: dict[str, Any]) -> dict[str, Any]:
    """Event details as stored: redacted (the services redact what they audit; this is the last line for
    any text that reaches storage), JSON, and capped to what a property holds."""
    detail_json = json.dumps(redact_json(details)[0], ensure_ascii=False, default=str)
    if len(detail_json) > MAX_DETAIL_CHARS:
        detail_json = json.dumps({"truncated": True, "preview": detail_json[:1000]})
    loaded: dict[str, Any] = json.loads(detail_json)
    return loaded


def chain_events(
    handoff_id: str, last_seq: int, last_hash: str | None, drafts: list[NewEvent]
) -> list[AuditEvent]:
    """``drafts`` as the events that follow event ``last_seq`` (hash ``last_hash``) in the audit."""
    events = []
    at = audit_time(datetime.now(UTC))
    seq, prev = last_seq, last_hash
    for draft in drafts:
        seq += 1
        details = stored_details(draft.details)
        kind, actor = str(draft.type), str(draft.actor)
        digest = event_hash(handoff_id, seq, at, kind, actor, details, prev)
        events.append(
            AuditEvent(seq=seq, at=at, type=kind, actor=actor, details=details, hash=digest, prev_hash=prev)
        )
        prev = digest
    return events


@dataclass(frozen=True)
class StateCopy:
    """A handoff as this process last read or wrote it: the state with its ETag and the audit's tail,
    and (when they were read) the request and the hand-backs that go with that state."""

    state: HandoffState
    etag: str
    audit_seq: int
    audit_hash: str | None
    stored: StoredRequest | None = None
    handbacks: tuple[StoredHandback, ...] | None = None
    # About the memory the request takes: the characters of its stored document.
    weight: int = 0

    @classmethod
    def of(cls, entity: Any) -> StateCopy:
        """The copy a ``state`` entity read from storage makes (the request and hand-backs unknown)."""
        return cls(
            state=load(HandoffState, entity),
            etag=str(entity.metadata["etag"]),
            audit_seq=int(entity.get("AuditSeq") or 0),
            audit_hash=entity.get("AuditHash") or None,
        )

    def written(self, state: HandoffState, etag: str, events: list[AuditEvent]) -> StateCopy:
        """This copy after writing ``state`` with ``events`` (the storage's new ETag)."""
        last = events[-1] if events else None
        return replace(
            self,
            state=state,
            etag=etag,
            audit_seq=last.seq if last else self.audit_seq,
            audit_hash=last.hash if last else self.audit_hash,
        )

    def with_record_of(self, earlier: StateCopy | None) -> StateCopy:
        """This (freshly read) state with the request and hand-backs of an earlier copy, when they still
        go with it: every hand-back is written with its entry in the state, so the same hand-back
        numbers mean the same hand-backs."""
        if earlier is None or earlier.stored is None:
            return self
        kept = replace(self, stored=earlier.stored, weight=earlier.weight)
        if earlier.handbacks is None or {hb.seq for hb in earlier.handbacks} != set(self.state.handbacks):
            return kept
        return replace(kept, handbacks=earlier.handbacks)

    def record(self) -> HandoffRecord | None:
        """The handoff as a record (a copy callers may change), or None when the copy lacks a part."""
        if self.stored is None or self.handbacks is None:
            return None
        return HandoffRecord(
            stored=self.stored,
            state=self.state.model_copy(deep=True),
            handbacks=list(self.handbacks),
            version=state_version(self.state),
        )


class StateCopies:
    """The last copies of handoffs this process read or wrote, most recent first (a bounded LRU: a step
    starts from the copy its previous step left, and a write made from a copy that is no longer current
    fails on its ETag, so a stale copy costs a re-read, never a wrong write). At most ``capacity``
    copies, whose requests weigh at most ``max_weight`` characters together."""

    def __init__(self, capacity: int = 256, max_weight: int = 8_000_000) -> None:
        self.capacity = capacity
        self.max_weight = max_weight
        self._lock = threading.Lock()
        self._copies: OrderedDict[str, StateCopy] = OrderedDict()
        self._weight = 0

    def get(self, handoff_id: str) -> StateCopy | None:
        """The copy of ``handoff_id``, if this process has one."""
        with self._lock:
            copy = self._copies.get(handoff_id)
            if copy is not None:
                self._copies.move_to_end(handoff_id)
            return copy

    def put(self, handoff_id: str, copy: StateCopy) -> None:
        """Keep ``copy`` as the latest of ``handoff_id``."""
        with self._lock:
            self._pop(handoff_id)
            self._copies[handoff_id] = copy
            self._weight += copy.weight
            while len(self._copies) > self.capacity or (self._weight > self.max_weight and self._copies):
                self._pop(next(iter(self._copies)))

    def drop(self, handoff_id: str) -> None:
        """Forget the copy of ``handoff_id``."""
        with self._lock:
            self._pop(handoff_id)

    def _pop(self, handoff_id: str) -> None:
        dropped = self._copies.pop(handoff_id, None)
        if dropped is not None:
            self._weight -= dropped.weight
