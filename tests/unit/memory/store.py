"""The :class:`~handoff.ports.HandoffStore` port in memory, with the semantics of the Table adapter
(``handoff/adapters/azure_storage/handoffs.py``):

- documents are kept as the JSON the adapter writes, so every read is a fresh copy and a value that
  does not survive a JSON round trip does not survive here either;
- ``create`` is insert-if-absent over the request, the state and the first audit events together (and,
  for the root of a chain, its first chain rows); a document too large for an entity is refused with
  the adapter's 413 problem;
- records carry the version of the state they were read at (:func:`state_version`: audit events
  appended meanwhile leave it as it is); every write, audit appends included (the adapter keeps the
  audit's tail in the state row), still counts as a concurrent write for the optimistic retry;
- ``update_state`` is optimistic: read, mutate, write if nobody wrote in between, else re-read and
  re-run the mutation (at most :data:`MAX_OCC_RETRIES` times, then :class:`StorageUnavailable`); what the
  mutation raises propagates and nothing is written; a missing state is :class:`EntityNotFound`; with
  a ``version`` the state no longer has it raises :class:`StateChanged` and writes nothing; its audit
  events are written with the state or not at all;
- ``add_handback`` numbers hand-backs from 1 and records the hand-back, its pending delivery and its
  events in one write; with a ``claim`` it returns the hand-back holding it;
- audit events are only inserted, redacted and capped like the adapter does, and hash-chained with
  :func:`handoff.domain.audit.event_hash`; appending to a handoff that does not exist is
  :class:`EntityNotFound`;
- ``stale_pending`` filters on the state's pending work and ``updated_at``, as the adapter's query.

``get(fresh=False)`` answers what ``get()`` does: this store is the one copy (the adapter may answer
from the copy its process last read or wrote, whose version its writes then check).

Tests reach behind the port with the helpers at the end (``state``, ``put_state``, ``event_types``,
``edit_event``, ``interleave``) and make it fail with :attr:`faults`.
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from pydantic import BaseModel

from handoff.domain.audit import audit_time, event_hash
from handoff.domain.chains import ChainMember
from handoff.domain.errors import FieldError, PayloadTooLarge
from handoff.domain.models import AuditEvent
from handoff.domain.records import (
    HandbackDelivery,
    HandoffRecord,
    HandoffState,
    LinkRecord,
    NewEvent,
    StoredHandback,
    StoredRequest,
    has_pending_work,
    state_version,
)
from handoff.domain.redaction import redact_json
from handoff.ports import AuditEvents, StateChanged, StorageUnavailable
from tests.unit.memory.chains import MemoryChainStore
from tests.unit.memory.faults import StorageFaults

MAX_DETAIL_CHARS = 16_000
MAX_DOC_BYTES = 1_000_000
MAX_OCC_RETRIES = 50


class EntityNotFound(LookupError):
    """The row does not exist (the Table SDK's ``ResourceNotFoundError``)."""


def _details(details: dict[str, Any]) -> dict[str, Any]:
    """Event details as the adapter stores them: redacted, JSON, capped."""
    detail_json = json.dumps(redact_json(details)[0], ensure_ascii=False, default=str)
    if len(detail_json) > MAX_DETAIL_CHARS:
        detail_json = json.dumps({"truncated": True, "preview": detail_json[:1000]})
    loaded: dict[str, Any] = json.loads(detail_json)
    return loaded


def _document(doc: BaseModel, what: str) -> str:
    """``doc`` as stored JSON; 413 when an entity could not hold it (counted in UTF-16, as Table Storage)."""
    text = doc.model_dump_json()
    size = len(text.encode("utf-16-le"))
    if size > MAX_DOC_BYTES:
        raise PayloadTooLarge(
            f"the {what} would take {size} bytes of table storage as stored (UTF-16); the limit is "
            f"{MAX_DOC_BYTES} bytes",
            errors=[FieldError(field="/", message=f"larger than {MAX_DOC_BYTES} bytes as stored")],
        )
    return text


@dataclass
class _Partition:
    """One handoff's rows: the request, the versioned state, hand-backs and hand-back claims."""

    request: str
    state: str
    version: int = 0
    handbacks: dict[int, str] = field(default_factory=dict)
    claims: dict[str, int] = field(default_factory=dict)


class MemoryHandoffStore:
    """Implements :class:`handoff.ports.HandoffStore` in memory."""

    def __init__(
        self, clock: Callable[[], datetime] | None = None, chains: MemoryChainStore | None = None
    ) -> None:
        self.clock = clock or (lambda: datetime.now(UTC))
        self.faults = StorageFaults()
        # The chain index: a root handoff starts its chain in the write that creates it.
        self.chains = chains or MemoryChainStore()
        self._rows: dict[str, _Partition] = {}
        self._audit: dict[str, list[AuditEvent]] = {}
        self._links: dict[tuple[str, str], dict[tuple[str, str], str]] = {}
        self._secrets: dict[str, bytes] = {}
        self._interleaved: dict[str, list[Callable[[HandoffState], None]]] = {}
        self.occ_retries = 0

    # ---------------------------------------------------------------- HandoffStore

    def create(
        self,
        stored: StoredRequest,
        state: HandoffState,
        events: Sequence[NewEvent] = (),
        chain: ChainMember | None = None,
    ) -> bool:
        request = _document(stored, "handoff request")
        drafts = [(event, _details(event.details)) for event in events]
        self.faults.check("create")
        if stored.id in self._rows:
            return False
        if chain is not None and chain.root_id != stored.id:
            raise ValueError("only the root of a chain starts it in its own partition")
        self._rows[stored.id] = _Partition(request=request, state=state.model_dump_json())
        self._audit[stored.id] = []
        self._append(stored.id, drafts)
        if chain is not None:
            self.chains.start(chain)
        return True

    def get(self, handoff_id: str, *, fresh: bool = True) -> HandoffRecord | None:
        self.faults.check("get")
        rows = self._rows.get(handoff_id)
        if rows is None or not rows.request or not rows.state:
            return None  # the adapter needs both the request and the state row
        return HandoffRecord(
            stored=StoredRequest.model_validate_json(rows.request),
            state=HandoffState.model_validate_json(rows.state),
            handbacks=[
                StoredHandback.model_validate_json(rows.handbacks[seq]) for seq in sorted(rows.handbacks)
            ],
            version=state_version(HandoffState.model_validate_json(rows.state)),
        )

    def update_state(
        self,
        handoff_id: str,
        mutate: Callable[[HandoffState], None],
        events: AuditEvents = (),
        *,
        version: str | None = None,
    ) -> HandoffState:
        for _ in range(MAX_OCC_RETRIES):
            self.faults.check("update_state")
            rows = self._partition(handoff_id)
            read_at = rows.version
            state = HandoffState.model_validate_json(rows.state)
            if version is not None and state_version(state) != version:
                raise StateChanged(handoff_id)
            mutate(state)
            drafts = [
                (event, _details(event.details)) for event in (events(state) if callable(events) else events)
            ]
            self._run_interleaved(handoff_id)
            if rows.version != read_at:
                self.occ_retries += 1  # a concurrent writer won: re-read and re-apply
                continue
            self._write_state(handoff_id, state, drafts)
            return HandoffState.model_validate_json(rows.state)
        raise StorageUnavailable(
            f"state of {handoff_id} kept changing; gave up after {MAX_OCC_RETRIES} tries"
        )

    def add_handback(
        self,
        handoff_id: str,
        make: Callable[[int], StoredHandback],
        claim: str | None = None,
        events: Callable[[StoredHandback], Sequence[NewEvent]] | None = None,
    ) -> tuple[StoredHandback, bool]:
        self.faults.check("add_handback")
        rows = self._partition(handoff_id)
        if claim is not None and claim in rows.claims:
            return StoredHandback.model_validate_json(rows.handbacks[rows.claims[claim]]), False
        state = HandoffState.model_validate_json(rows.state)
        handback = make(1 + max(state.handbacks, default=0))
        document = _document(handback, "hand-back")
        drafts = [(event, _details(event.details)) for event in (events(handback) if events else ())]
        state.handbacks.setdefault(handback.seq, HandbackDelivery())
        state.updated_at = handback.received_at
        rows.handbacks[handback.seq] = document
        if claim is not None:
            rows.claims[claim] = handback.seq
        self._write_state(handoff_id, state, drafts)
        return StoredHandback.model_validate_json(document), True

    def append_audit(self, handoff_id: str, type: str, actor: str, details: dict[str, Any]) -> AuditEvent:
        detail = _details(details)
        self.faults.check("append_audit")
        rows = self._partition(handoff_id)
        self._write_state(
            handoff_id,
            HandoffState.model_validate_json(rows.state),
            [(NewEvent(type, actor, details), detail)],
        )
        return self._audit[handoff_id][-1].model_copy(deep=True)

    def list_audit(self, handoff_id: str, after: int = 0, limit: int | None = None) -> list[AuditEvent]:
        self.faults.check("list_audit")
        events = [
            event.model_copy(deep=True) for event in self._audit.get(handoff_id, []) if event.seq > after
        ]
        return events if limit is None else events[:limit]

    def _partition(self, handoff_id: str) -> _Partition:
        rows = self._rows.get(handoff_id)
        if rows is None or not rows.state:
            raise EntityNotFound(f"no state row for {handoff_id}")
        return rows

    def _write_state(
        self, handoff_id: str, state: HandoffState, drafts: list[tuple[NewEvent, dict[str, Any]]]
    ) -> None:
        rows = self._rows[handoff_id]
        rows.state = state.model_dump_json()
        rows.version += 1
        self._append(handoff_id, drafts)

    def _append(self, handoff_id: str, drafts: list[tuple[NewEvent, dict[str, Any]]]) -> None:
        events = self._audit.setdefault(handoff_id, [])
        at = audit_time(self.clock())
        for draft, details in drafts:
            seq = len(events) + 1
            prev_hash = events[-1].hash if events else None
            kind, actor = str(draft.type), str(draft.actor)
            digest = event_hash(handoff_id, seq, at, kind, actor, details, prev_hash)
            events.append(
                AuditEvent(
                    seq=seq, at=at, type=kind, actor=actor, details=details, hash=digest, prev_hash=prev_hash
                )
            )

    def add_links(self, links: list[LinkRecord]) -> None:
        self.faults.check("add_links")
        for link in links:
            partition = self._links.setdefault((link.agent, link.thread_id), {})
            partition[(link.handoff_id, link.relation)] = link.model_dump_json()

    def links_of(self, agent: str, thread_id: str) -> list[LinkRecord]:
        self.faults.check("links_of")
        rows = self._links.get((agent, thread_id), {})
        return [LinkRecord.model_validate_json(rows[key]) for key in sorted(rows)]

    def stale_pending(self, older_than: datetime) -> list[str]:
        self.faults.check("stale_pending")
        found = []
        for handoff_id, rows in self._rows.items():
            if not rows.state:
                continue
            state = HandoffState.model_validate_json(rows.state)
            if has_pending_work(state) and state.updated_at < older_than:
                found.append(handoff_id)
        return found

    def ping(self) -> None:
        self.faults.check("ping")

    def secret(self, name: str) -> bytes:
        self.faults.check("secret")
        return self._secrets.setdefault(name, secrets.token_bytes(32))

    # ---------------------------------------------------------------- behind the port (tests only)

    def ids(self) -> list[str]:
        """Ids of every stored handoff, in creation order."""
        return [handoff_id for handoff_id, rows in self._rows.items() if rows.request]

    def state(self, handoff_id: str) -> HandoffState:
        """The stored state, read without touching the fault plan."""
        return HandoffState.model_validate_json(self._rows[handoff_id].state)

    def put_state(self, handoff_id: str, state: HandoffState) -> None:
        """Overwrite the state as another writer would (its version changes)."""
        rows = self._rows[handoff_id]
        rows.state = state.model_dump_json()
        rows.version += 1

    def events(self, handoff_id: str) -> list[AuditEvent]:
        """The stored audit events, oldest first."""
        return [event.model_copy(deep=True) for event in self._audit.get(handoff_id, [])]

    def event_types(self, handoff_id: str) -> list[str]:
        """The types of the stored audit events, oldest first."""
        return [event.type for event in self._audit.get(handoff_id, [])]

    def edit_event(self, handoff_id: str, seq: int, **changes: Any) -> None:
        """Change a stored event behind the adapter's back (what the hash chain must reveal)."""
        events = self._audit[handoff_id]
        events[seq - 1] = events[seq - 1].model_copy(update=changes)

    def delete_event(self, handoff_id: str, seq: int) -> None:
        """Remove a stored event behind the adapter's back."""
        del self._audit[handoff_id][seq - 1]

    def interleave(self, handoff_id: str, other: Callable[[HandoffState], None], times: int = 1) -> None:
        """Let another writer change the state between the next ``times`` reads and writes of
        ``update_state`` (each such write then loses the optimistic race and re-runs its mutation)."""
        self._interleaved.setdefault(handoff_id, []).extend([other] * times)

    def _run_interleaved(self, handoff_id: str) -> None:
        pending = self._interleaved.get(handoff_id)
        if not pending:
            return
        other = pending.pop(0)
        state = self.state(handoff_id)
        other(state)
        self.put_state(handoff_id, state)
