"""In-memory ports for the alert use cases: the alert table, and minimal ports of the handoff use cases
they run over (storage of handoffs and audit, the delivery queue, the agents, registry, settings, clock),
with a stand-in for the intake of system handoffs that also listens for resolved alerts.

Documents are kept as JSON, as the table adapter keeps them, so what a use case reads back is what it
wrote (unknown fields of older rows included). ``down`` makes every storage call raise
:class:`StorageUnavailable`.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

from pydantic import BaseModel

from handoff.domain.auth import Caller
from handoff.domain.models import AuditEvent, HandoffRequest
from handoff.domain.records import AgentCallError, HandoffRecord, HandoffState, StoredRequest
from handoff.domain.registry import Registry
from handoff.domain.work import AlertNote, AlertResolved, parse_work
from handoff.ports import StorageUnavailable
from handoff.services.alert_intake import AlertIntake
from handoff.services.alert_notes import AlertNotes
from handoff.services.context import ServiceContext
from handoff.settings import Settings

ModelT = TypeVar("ModelT", bound=BaseModel)
START = datetime(2026, 1, 5, 10, 0, tzinfo=UTC)


class MemoryAlertStore:
    """The alert table in memory, with the adapter's semantics: atomic insert-if-absent, updates that
    apply ``mutate`` to the current document, a per-process latest copy for ``fresh=False`` reads."""

    def __init__(self) -> None:
        self.rows: dict[tuple[str, str], str] = {}
        self.latest: dict[tuple[str, str], str] = {}  # what this "process" last read or wrote
        self.events: list[tuple[str, str, dict[str, Any]]] = []
        self.down = False
        self.updates = 0
        # Runs before an update reads the row: a test plays a concurrent writer here.
        self.before_update: Callable[[str, str], None] | None = None

    def _check(self) -> None:
        if self.down:
            raise StorageUnavailable("the alert table is unreachable")

    def insert(self, partition: str, row: str, doc: BaseModel) -> bool:
        self._check()
        if (partition, row) in self.rows:
            return False
        self.rows[(partition, row)] = doc.model_dump_json()
        return True

    def read(self, partition: str, row: str, model: type[ModelT], *, fresh: bool = True) -> ModelT | None:
        self._check()
        key = (partition, row)
        if not fresh and key in self.latest:
            return model.model_validate_json(self.latest[key])
        if key not in self.rows:
            return None
        self.latest[key] = self.rows[key]
        return model.model_validate_json(self.rows[key])

    def update(
        self, partition: str, row: str, model: type[ModelT], mutate: Callable[[ModelT | None], ModelT | None]
    ) -> ModelT | None:
        self._check()
        self.updates += 1
        if self.before_update is not None:
            self.before_update(partition, row)
        key = (partition, row)
        current = model.model_validate_json(self.rows[key]) if key in self.rows else None
        new = mutate(current)
        if new is None:
            return current
        self.rows[key] = self.latest[key] = new.model_dump_json()
        return new

    def log(self, partition: str, type: str, details: dict[str, Any]) -> None:
        self._check()
        self.events.append((partition, type, details))

    def doc(self, partition: str, row: str, model: type[ModelT]) -> ModelT | None:
        """The stored document (for assertions; never fails)."""
        text = self.rows.get((partition, row))
        return None if text is None else model.model_validate_json(text)


class MemoryHandoffStore:
    """Handoffs and their audit events (only what the alert use cases read and write)."""

    def __init__(self) -> None:
        self.records: dict[str, HandoffRecord] = {}
        self.audit: dict[str, list[AuditEvent]] = {}

    def create(self, stored: StoredRequest, state: HandoffState) -> bool:
        if stored.id in self.records:
            return False
        self.records[stored.id] = HandoffRecord(stored=stored, state=state)
        return True

    def get(self, handoff_id: str, *, fresh: bool = True) -> HandoffRecord | None:
        record = self.records.get(handoff_id)
        return None if record is None else record.model_copy(deep=True)

    def append_audit(self, handoff_id: str, type: str, actor: str, details: dict[str, Any]) -> AuditEvent:
        events = self.audit.setdefault(handoff_id, [])
        event = AuditEvent(seq=len(events) + 1, at=START, type=type, actor=actor, details=details)
        events.append(event)
        return event

    def list_audit(self, handoff_id: str, after: int = 0, limit: int | None = None) -> list[AuditEvent]:
        events = [e for e in self.audit.get(handoff_id, []) if e.seq > after]
        return events[:limit] if limit is not None else events

    def types(self, handoff_id: str) -> list[str]:
        """The audit event types of a handoff, in order."""
        return [e.type for e in self.audit.get(handoff_id, [])]


@dataclass
class MemoryQueue:
    """The delivery queue: messages with their delays, and the poison queue."""

    sent: list[tuple[dict[str, Any], float]] = field(default_factory=list)
    poison: list[dict[str, Any]] = field(default_factory=list)

    def send(self, message: dict[str, Any], delay_seconds: float = 0) -> None:
        self.sent.append((dict(message), delay_seconds))

    def send_poison(self, message: dict[str, Any]) -> None:
        self.poison.append(dict(message))

    def ops(self, op: str) -> list[dict[str, Any]]:
        """The messages sent with this ``op``."""
        return [message for message, _ in self.sent if message.get("op") == op]

    def take(self, op: str) -> list[dict[str, Any]]:
        """Remove and return the messages with this ``op`` (as a worker would receive them)."""
        taken = [message for message, _ in self.sent if message.get("op") == op]
        self.sent = [(m, d) for m, d in self.sent if m.get("op") != op]
        return taken


@dataclass
class MemoryAgents:
    """Agents' threads: what was posted where; ``failures`` are raised by the next posts, in order."""

    posted: list[tuple[str, str, str]] = field(default_factory=list)
    failures: list[AgentCallError] = field(default_factory=list)
    lost_answers: int = 0  # the next posts land but raise a transient error (the answer was lost)
    looked: int = 0

    def post_message(self, agent: Any, thread_id: str, text: str) -> str | None:
        if self.failures:
            raise self.failures.pop(0)
        self.posted.append((agent.name, thread_id, text))
        if self.lost_answers:
            self.lost_answers -= 1
            raise AgentCallError("answer lost", transient=True)
        return f"message-{len(self.posted)}"

    def find_message(
        self, agent: Any, thread_id: str, needle: str, since: datetime | None = None
    ) -> dict[str, Any] | None:
        self.looked += 1
        found = [
            {"id": f"message-{n}", "text": text}
            for n, (_, t, text) in enumerate(self.posted, 1)
            if t == thread_id and needle in text
        ]
        return found[-1] if found else None

    def texts(self, thread_id: str) -> list[str]:
        """What was posted into a thread, in order."""
        return [text for _, t, text in self.posted if t == thread_id]


class Clock:
    """A clock the test moves."""

    def __init__(self, now: datetime = START) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


class MemoryHandoffs:
    """The handoff ports the alert use cases run over, and a stand-in for the intake and the lifecycle
    listener: ``accept_system`` stores a system handoff once per id (audits ``accepted``, queues its
    delivery); an ``alertResolved`` lifecycle point is recorded in ``resolved``."""

    def __init__(
        self, registry: Registry, settings: Settings | None = None, clock: Clock | None = None
    ) -> None:
        self.registry = registry
        self.settings = settings or Settings(public_base_url="https://broker.example")
        self.clock = clock or Clock()
        self.store = MemoryHandoffStore()
        self.queue = MemoryQueue()
        self.agents = MemoryAgents()
        self.accepted: list[tuple[str, HandoffRequest, dict[str, Any]]] = []
        self.resolved: list[tuple[str, dict[str, Any]]] = []

    def accept_system(
        self, request: HandoffRequest, handoff_id: str, caller: Caller, details: dict[str, Any] | None = None
    ) -> tuple[HandoffRecord, bool]:
        target = self.registry.by_name(request.target.agent).name
        stored = StoredRequest(
            id=handoff_id,
            request=request,
            source_agent=request.source.agent,
            target_agent=target,
            root_id=handoff_id,
            body_hash="-",
            created_at=self.clock(),
            caller=caller.describe(),
        )
        created = self.store.create(stored, HandoffState(updated_at=self.clock()))
        if created:
            self.accepted.append((handoff_id, request, dict(details or {})))
            self.store.append_audit(handoff_id, "accepted", caller.describe(), dict(details or {}))
            self.queue.send({"op": "deliver", "handoffId": handoff_id, "attempt": 1})
        record = self.store.get(handoff_id)
        if record is None:
            raise StorageUnavailable("the handoff vanished")
        return record, created

    def on_lifecycle(self, record: HandoffRecord, point: str, details: dict[str, Any]) -> None:
        if point == "alertResolved":
            self.resolved.append((record.id, dict(details)))

    def deliver(self, handoff_id: str, thread_id: str | None = None) -> str:
        """Mark a handoff delivered into a new thread (as the delivery worker would); returns the thread."""
        thread = thread_id or f"thread-{handoff_id[:8]}"
        record = self.store.records[handoff_id]
        record.state.status = "delivered"
        record.state.target_thread_id = thread
        return thread

    def fail(self, handoff_id: str) -> None:
        """Mark a handoff's delivery failed."""
        self.store.records[handoff_id].state.status = "failed"


class AlertWorld:
    """The alert use cases wired to the in-memory ports."""

    def __init__(self, registry: Registry, settings: Settings | None = None) -> None:
        self.handoffs = handoffs = MemoryHandoffs(registry, settings)
        self.ctx = ServiceContext.build(
            settings=handoffs.settings,
            registry=registry,
            store=handoffs.store,
            queue=handoffs.queue,
            agents=handoffs.agents,
            clock=handoffs.clock,
            lifecycle=handoffs,
        )
        self.store = MemoryAlertStore()
        self.notes = AlertNotes(self.ctx, self.store)
        self.intake = AlertIntake(self.ctx, handoffs, self.store, self.notes)
        self.caller = Caller("system")

    @property
    def clock(self) -> Clock:
        return self.handoffs.clock

    @property
    def queue(self) -> MemoryQueue:
        return self.handoffs.queue

    def post(self, body: dict[str, Any]) -> tuple[dict[str, Any], bool]:
        """``POST /api/alerts`` with this body: the receipt as JSON (camelCase) and whether it routed."""
        receipt, routed = self.intake.receive(json.dumps(body).encode(), self.caller)
        return receipt.model_dump(mode="json", by_alias=True, exclude_none=True), routed

    def run_notes(self) -> int:
        """Run every queued note message once (their delays ignored); returns how many ran."""
        messages = self.queue.take("alertNote") + self.queue.take("alertResolved")
        for message in messages:
            self.process(message)
        return len(messages)

    def process(self, message: dict[str, Any]) -> None:
        """Run one note message as the delivery worker would hand it over (parsed)."""
        work = parse_work(message)
        if not isinstance(work, AlertNote | AlertResolved):
            raise TypeError(f"not an alert note: {message}")
        self.notes.process(work)
