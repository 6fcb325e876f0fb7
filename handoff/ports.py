"""The ports: every boundary the use cases talk through, as ``Protocol``s, and the storage exceptions.

Adapters implement these; use cases depend on nothing else of the outside world. In-memory
implementations for unit tests live in ``tests/unit/memory``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import date, datetime
from typing import Any, Protocol, TypeAlias, TypeVar

from pydantic import BaseModel

from handoff.domain.chains import ChainMember, PairSlot
from handoff.domain.history import HistoryPage, HistoryQuery
from handoff.domain.listing import HandoffSummary, IndexFilter, IndexRow
from handoff.domain.models import AuditEvent
from handoff.domain.records import (
    HandoffRecord,
    HandoffState,
    LinkRecord,
    NewEvent,
    RemoteTask,
    StoredHandback,
    StoredRequest,
)
from handoff.domain.registry import AgentConfig
from handoff.domain.shared_memory.config import Backend
from handoff.domain.shared_memory.human_entries import HumanEntry
from handoff.domain.shared_memory.polling import PollCursor, PolledRecord
from handoff.domain.shared_memory.writes import Destination, WriteJob, WriteRow

ModelT = TypeVar("ModelT", bound=BaseModel)


class InboundStore(Protocol):
    """The destination index and the entries already received (insert-if-absent), in storage."""

    def handoffs_at(self, backend: str, destination: str) -> list[str]:
        """The handoffs indexed on one record of a backend."""

    def claim_entry(self, backend: str, entry_id: str, values: dict[str, str | datetime]) -> bool:
        """Record an entry as received (``values``: what to keep with it); False when it already was
        (a replay or a poll)."""

    def release_entry(self, backend: str, entry_id: str) -> None:
        """Forget an entry whose queueing failed, so the vendor's retry is taken."""


class HumanNotesIndex(Protocol):
    """Where ``GET /api/history`` finds the human entries of an investigation."""

    def add_human_note(self, handoff_id: str, note: dict[str, Any]) -> None:
        """Keep one entry with its investigation (idempotent); ``note`` is JSON (see
        :func:`handoff.domain.shared_memory.human_entries.history_note`)."""


class DestinationIndex(Protocol):
    """Writes ``destination -> handoff id`` rows."""

    def index_destination(self, backend: str, destination: str, handoff_id: str, poll: bool = False) -> None:
        """Index a handoff on one record of a backend (idempotent); with ``poll``, also list the record
        among the backend's polled records (:class:`PollIndex`)."""


class PollIndex(Protocol):
    """The records each polling backend reads for people's entries, with their poll state, in storage
    (one partition per backend: listing them is one query)."""

    def polled_records(self, backend: str, limit: int) -> list[PolledRecord]:
        """Up to ``limit`` records of the backend with the investigations indexed on them."""

    def claim_poll(self, backend: str, record: PolledRecord, now: datetime) -> bool:
        """Mark ``record`` polled at ``now``, unless its poll state changed since it was listed
        (another poller took it): False then."""

    def save_cursor(self, backend: str, destination: str, cursor: PollCursor) -> None:
        """Keep where the next poll of the record starts."""

    def forget(self, backend: str, destination: str, handoff_ids: list[str], *, whole: bool) -> None:
        """Stop polling the record for these (closed) investigations; ``whole``: none is left on it,
        so its poll state goes too."""


class EntryReaders(Protocol):
    """Reads people's entries on a record from the vendor (the polling fallback of webhooks)."""

    def entries_since(self, backend: Backend, destination: str, since: datetime) -> list[HumanEntry]:
        """Entries on record ``destination`` created at ``since`` or later (the broker's own among
        them), as the vendor lists them. Raises :class:`~handoff.domain.shared_memory.writes.WriteError`
        as writers do: ``backend_wide`` with ``retry_after`` when the vendor rate-limits the broker."""


class BackendHolds(Protocol):
    """Backend-wide holds after a vendor's rate limit, shared by writes and polls."""

    def blocked_until(self, key: str) -> datetime | None:
        """Until when every call to a backend waits (a rate limit it reported), if at all."""

    def block(self, key: str, until: datetime) -> None:
        """Hold every call to a backend until ``until``."""


class CoordinationState(Protocol):
    """Coordination through storage (never process memory), so several broker instances agree."""

    def reserve_slot(self, key: str, spacing: float, hourly_limit: int, now: datetime) -> float:
        """Take the next content-write slot for ``key``: 0 when taken, else seconds to wait."""

    def claim_chain(self, key: str, now: datetime, lease_seconds: float) -> tuple[str, int | None, bool]:
        """Who opens the chain's issue: ``("created", number, _)``, ``("busy", None, _)`` or
        ``("claimed", None, stale)`` where ``stale`` means an earlier claimant may have opened it."""

    def set_chain(self, key: str, number: int) -> None:
        """Record the chain's issue number."""

    def abandon_chain(self, key: str) -> None:
        """Drop a claim before anything was sent."""

    def release_chain(self, key: str) -> None:
        """Give up a claim whose creation may or may not have happened (the next claimant probes)."""

    def get_hint(self, key: str) -> int:
        """The highest issue number seen in a repository (0 when unknown)."""

    def set_hint(self, key: str, number: int) -> None:
        """Raise the repository's highest seen issue number."""


class WriteStateStore(CoordinationState, Protocol):
    """Per-write state and backend-wide holds, in storage."""

    def get_write(self, handoff_id: str, key: str) -> WriteRow | None:
        """The state of one write (``Status``, ``Attempted``, ``Attempts``, ...), or None."""

    def put_write(self, handoff_id: str, key: str, values: WriteRow) -> None:
        """Merge ``values`` into the state of one write."""

    def list_writes(self, handoff_id: str) -> list[WriteRow]:
        """Every write of a handoff (each with ``Key``)."""

    def blocked_until(self, key: str) -> datetime | None:
        """Until when every write to a backend waits (a rate limit it reported), if at all."""

    def block(self, key: str, until: datetime) -> None:
        """Hold every write to a backend until ``until``."""

    def stale_writes(self, older_than: datetime) -> list[WriteRow]:
        """Writes still ``pending`` with no change since ``older_than`` (each with ``PartitionKey``)."""


class Writer(Protocol):
    """The one interface of a shared-memory backend."""

    def destination(self, job: WriteJob) -> Destination | None:
        """Where this write goes, or None when the handoff has nothing here to write to (skipped)."""

    def find(self, dest: Destination, job: WriteJob) -> str | None:
        """On a retry: the URL/id of an earlier write carrying ``job.note.marker``, if any."""

    def write(self, dest: Destination, job: WriteJob) -> str:
        """Append the note; returns a URL or id of what was written."""


class Writers(Protocol):
    """The writer of each configured backend (the composition root knows the vendors)."""

    def writer_for(self, backend: Backend) -> Writer:
        """The writer for ``backend`` (ValueError for a type no writer serves)."""


class AlertStore(Protocol):
    """Storage of alert rows, storm state and note state (one table), plus an insert-only alert log."""

    def insert(self, partition: str, row: str, doc: BaseModel) -> bool:
        """Insert a document if absent (atomic); False when the row exists."""

    def read(self, partition: str, row: str, model: type[ModelT], *, fresh: bool = True) -> ModelT | None:
        """The document, or None. ``fresh=False`` may answer from this process's latest copy (for
        fields that never change once set)."""

    def update(
        self, partition: str, row: str, model: type[ModelT], mutate: Callable[[ModelT | None], ModelT | None]
    ) -> ModelT | None:
        """Apply ``mutate`` to the current document (None when absent) and write what it returns
        (nothing when it returns None) with optimistic concurrency, re-running it on conflicts."""

    def log(self, partition: str, type: str, details: dict[str, Any]) -> None:
        """Insert an event about an alert that has no handoff (never updated or deleted)."""


class ChainStore(Protocol):
    """The chain index: members of each chain and the pair slots that enforce the ping-pong limit."""

    def reserve(self, member: ChainMember, limit: int) -> PairSlot:
        """Take a free slot (1..``limit``) of ``member``'s ordered pair in its chain and record the member,
        in one atomic write; when the handoff already holds a slot (an idempotent replay), return that
        slot with ``new=False``. Raise :class:`PairFull` with the holders' ids when none is free."""

    def release(self, slot: PairSlot) -> None:
        """Give back a slot this request took (and its member record) when the handoff was not created."""

    def members(self, root_id: str) -> list[ChainMember]:
        """Every recorded handoff of the chain."""


class HistorySearch(Protocol):
    """Reads the history index."""

    def search(self, query: HistoryQuery, agents: frozenset[str] | None = None) -> HistoryPage:
        """One page of matching investigations, newest first; with ``agents``, only those in which one
        of them handed off or received."""


AuditEvents: TypeAlias = Sequence[NewEvent] | Callable[[HandoffState], Sequence[NewEvent]]
"""Audit events to append with a state change: fixed, or made from the state the mutation left (called
after it, on every try)."""


class HandoffStore(Protocol):
    """Durable state: handoffs, hand-backs, audit events and links.

    A handoff's rows change together: each write is one atomic write of its state with the audit events
    that go with it (the state carries the audit's tail, so the events are numbered and hash-chained
    without reading the audit). Writes are optimistic: a mutation runs on the state the store last read
    or wrote for the handoff in this process, and again on the stored one when someone wrote in between.
    """

    def create(
        self,
        stored: StoredRequest,
        state: HandoffState,
        events: Sequence[NewEvent] = (),
        chain: ChainMember | None = None,
    ) -> bool:
        """Insert a new handoff with its first audit events atomically; False when one with this id
        already exists (then nothing is written). With ``chain`` (the handoff is the root of its chain),
        the chain index starts in the same write: the member record and slot 1 of its agent pair."""

    def get(self, handoff_id: str, *, fresh: bool = True) -> HandoffRecord | None:
        """The handoff with its state and hand-backs, or None. ``fresh=False`` may answer from the copy
        this process last read or wrote (writes conditioned on its ``version`` tell whether it is
        still current)."""

    def update_state(
        self,
        handoff_id: str,
        mutate: Callable[[HandoffState], None],
        events: AuditEvents = (),
        *,
        version: str | None = None,
    ) -> HandoffState:
        """Apply ``mutate`` to the current state and save it with ``events``, retrying on concurrent
        writes (what ``mutate`` raises propagates and nothing is written). With ``version``, the write
        is made only on that version of the state: :class:`StateChanged` when it is not current."""

    def add_handback(
        self,
        handoff_id: str,
        make: Callable[[int], StoredHandback],
        claim: str | None = None,
        events: Callable[[StoredHandback], Sequence[NewEvent]] | None = None,
    ) -> tuple[StoredHandback, bool]:
        """Insert the next hand-back (sequence numbers start at 1) and whether it is new, in one write
        with its delivery recorded as pending in the state (``updated_at`` becomes its ``received_at``)
        and ``events``. With ``claim`` (a key derived from an Idempotency-Key) the write also claims it:
        when the claim exists already, nothing is written and the hand-back that holds it is returned."""

    def append_audit(self, handoff_id: str, type: str, actor: str, details: dict[str, Any]) -> AuditEvent:
        """Append one audit event on its own; never updates or deletes one."""

    def list_audit(self, handoff_id: str, after: int = 0, limit: int | None = None) -> list[AuditEvent]:
        """The handoff's audit events in order: those after sequence number ``after``, at most ``limit``."""

    def add_links(self, links: list[LinkRecord]) -> None:
        """Store link records (idempotent)."""

    def links_of(self, agent: str, thread_id: str) -> list[LinkRecord]:
        """Links whose ``agent``/``thread_id`` side is the given thread."""

    def stale_pending(self, older_than: datetime) -> list[str]:
        """Ids of handoffs with work left (still ``accepted``, a cross-link or a hand-back not yet
        posted; see :func:`has_pending_work`) and no state change since ``older_than``."""

    def ping(self) -> None:
        """Raise if storage cannot be reached (fast, no retries)."""

    def secret(self, name: str) -> bytes:
        """A random 32-byte secret of the broker's own, created on first use and the same ever after
        (for every instance): keys ids that callers must not be able to compute."""


class DeliveryQueue(Protocol):
    """The queue that drives delivery work."""

    def send(self, message: dict[str, Any], delay_seconds: float = 0) -> None:
        """Enqueue a work message, visible after ``delay_seconds``."""

    def send_poison(self, message: dict[str, Any]) -> None:
        """Put a message on the poison queue for people to inspect and replay."""


class AgentGateway(Protocol):
    """The agents' data-plane APIs, reached with the broker's managed identity."""

    def create_thread(self, agent: AgentConfig, text: str) -> str:
        """Start a thread on ``agent`` with ``text`` as its first message; returns the thread id."""

    def fire_trigger(self, agent: AgentConfig, payload: dict[str, Any]) -> str | None:
        """Call the agent's HTTP trigger with ``payload``; returns the thread id when the agent says."""

    def find_thread(self, agent: AgentConfig, needle: str, since: datetime | None = None) -> str | None:
        """Id of the thread the broker opened for handoff ``needle``, if any (its start message begins
        with the handoff's header and ends with its start marker; see messages.is_handoff_thread).
        Threads are read newest first, page by page, down to those created before ``since`` (all of
        them without it, up to a cap); raises a permanent :class:`AgentCallError` when the cap is
        reached before the answer is certain."""

    def post_message(self, agent: AgentConfig, thread_id: str, text: str) -> str | None:
        """Post ``text`` into an existing thread; the new message's id when the answer gives one."""

    def find_message(
        self, agent: AgentConfig, thread_id: str, needle: str, since: datetime | None = None
    ) -> dict[str, Any] | None:
        """The broker's message with marker line ``needle`` in the thread (its last line, under the
        handoff's header; see messages.is_marked), read newest first down to messages older than
        ``since``, as :meth:`find_thread` does."""

    def has_message(
        self, agent: AgentConfig, thread_id: str, needle: str, since: datetime | None = None
    ) -> bool:
        """Whether :meth:`find_message` finds the message."""

    def get_thread(self, agent: AgentConfig, thread_id: str) -> dict[str, Any]:
        """The thread object (``GET /api/v1/threads/{id}``), camelCase as the agent answers."""

    def list_messages(self, agent: AgentConfig, thread_id: str) -> list[dict[str, Any]]:
        """The thread's recent messages, oldest first."""


class RemoteAgentGateway(Protocol):
    """Agents reached over A2A: send the handoff as a message, then follow the task it started."""

    def send_message(
        self,
        agent: AgentConfig,
        *,
        message_id: str,
        context_id: str,
        text: str,
        data: dict[str, Any],
        contract: dict[str, Any] | None = None,
        push_url: str | None = None,
        push_token: str | None = None,
    ) -> RemoteTask:
        """``SendMessage`` (returning at once); the task the peer created for it. ``contract`` (the
        handoff as the contract's ``handoff-request``) rides as a data part tagged with the contract's A2A
        extension, which every call activates. With ``push_url``, the peer is asked in the same request
        to push the task's updates there, with ``push_token``."""

    def supports_push(self, agent: AgentConfig) -> bool:
        """Whether the peer's agent card declares push notifications."""

    def get_task(self, agent: AgentConfig, task_id: str) -> RemoteTask:
        """``GetTask``: the task's current state and artifacts."""

    def find_task(self, agent: AgentConfig, *, context_id: str, message_id: str) -> RemoteTask | None:
        """The peer's task that ``message_id`` started, if the peer can list tasks; None otherwise."""


class LifecycleListener(Protocol):
    """Told about a handoff's lifecycle points after the service has recorded them.

    Implementations only enqueue work (investigate first, persist second): they must return quickly,
    and whatever they raise is logged and swallowed by the service, so a listener can never delay or
    fail a handoff.
    """

    def on_lifecycle(self, record: HandoffRecord, point: str, details: dict[str, Any]) -> None:
        """``point`` is one of :data:`LIFECYCLE_POINTS`; ``details`` are secret-free facts of the event
        (for a hand-back its ``seq``; optionally ``sharedMemory``: extra backend names)."""


class NoLifecycleListener:
    """The default listener: does nothing."""

    def on_lifecycle(self, record: HandoffRecord, point: str, details: dict[str, Any]) -> None:
        """Ignore the event."""


class HistoryIndex(Protocol):
    """Searchable index of past investigations, written at every hand-back."""

    def index_handback(
        self, record: HandoffRecord, handback: StoredHandback, alert_rule: str | None = None
    ) -> None:
        """Write (idempotently) the index entries of one hand-back."""

    def recent_for_resources(
        self, resources: list[str], exclude_root: str, limit: int, agents: frozenset[str] | None = None
    ) -> list[dict[str, Any]]:
        """Up to ``limit`` earlier investigations of these resources (else of their resource groups),
        newest first, none from the chain ``exclude_root``; with ``agents``, only those in which one of
        them handed off or received."""


class HandoffIndex(Protocol):
    """The index ``GET /api/handoffs`` lists from: one entry per handoff in the partition of its UTC day
    of creation, rewritten at each status change (see :mod:`handoff.domain.listing`)."""

    def put(self, summary: HandoffSummary) -> None:
        """Write (upsert: idempotent, the last write wins) the entry of one handoff."""

    def add(self, summary: HandoffSummary) -> None:
        """Write the entry of one handoff unless it has one (insert-if-absent): an entry a later status
        change wrote is never replaced by this one."""

    def read_day(
        self, day: date, where: IndexFilter, limit: int, after: str | None = None, until: str | None = None
    ) -> list[IndexRow]:
        """Up to ``limit`` entries created on ``day`` that pass ``where``, newest first: one query of the
        day's partition; with ``after``, only those after that row key (older); with ``until``, only
        those at or below that row key (created at or after some time)."""


class StorageUnavailable(Exception):
    """Raised by adapters when storage cannot be reached; entrypoints answer 503."""


class StorageLayoutMismatch(StorageUnavailable):
    """Storage holds data written in another storage layout than this broker's. Its message says which
    and what to do; entrypoints answer 503 with it as the detail."""


class StateChanged(Exception):
    """A write conditioned on a version of a handoff's state found the state changed since: whatever was
    decided on that version must be decided again on the current one."""


class LeaseBusy(Exception):
    """Another worker is processing this handoff right now."""


class LeaseLost(Exception):
    """This worker's lease on the handoff ran out and another worker took the handoff over: the state
    write that found out was not made, and the step stops before calling anyone."""
