"""What the broker stores about a handoff, and the ports through which the service layer reaches
storage, the delivery queue and the agents. Adapters implement the ports; the domain imports no SDK."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal, Protocol

from pydantic import BaseModel, ConfigDict, Field

from handoff.models import AuditEvent, HandbackRequest, HandoffRequest, HandoffStatus
from handoff.redaction import redact

StepStatus = Literal["pending", "posted", "failed", "noSourceThread"]


class StoredRequest(BaseModel):
    """The accepted request, normalised (agents by registered name). Written once, never changed."""

    model_config = ConfigDict(frozen=True)

    id: str
    request: HandoffRequest
    source_agent: str
    target_agent: str
    root_id: str
    depth: int = 0
    body_hash: str
    idempotency_key: str | None = None
    created_at: datetime
    caller: str
    # Set for handoffs the broker starts from an alert: the route's shared-memory backends (written at
    # every lifecycle point, like the target agent's) and the alert rule (for the history index).
    shared_memory: tuple[str, ...] = ()
    alert_rule: str | None = None


class HandbackDelivery(BaseModel):
    """Where a hand-back's message into the source thread stands."""

    status: StepStatus = "pending"
    attempted: bool = False
    # When the first post was tried (a retry looks back through the thread to a little before it) and
    # the id of the message posted, when the agent's answer gave one.
    attempted_at: datetime | None = None
    message_id: str | None = None
    posted_at: datetime | None = None
    error: str | None = None


class HandoffState(BaseModel):
    """The mutable part of a handoff, updated with optimistic concurrency."""

    status: HandoffStatus = "accepted"
    updated_at: datetime
    target_thread_id: str | None = None
    delivered_at: datetime | None = None
    handed_back_at: datetime | None = None
    attempts: int = 0
    create_attempted: bool = False
    # When the thread (or A2A message) was first tried: a retry looks back to a little before it.
    create_attempted_at: datetime | None = None
    last_error: str | None = None
    crosslink: StepStatus = "pending"
    crosslink_attempted: bool = False
    crosslink_attempted_at: datetime | None = None
    crosslink_message_id: str | None = None
    handbacks: dict[int, HandbackDelivery] = Field(default_factory=dict)
    # The per-handoff lease: until when, and which worker holds it (each state write of that worker
    # checks that it still does and renews it).
    lease_until: datetime | None = None
    lease_owner: str | None = None
    # A retry deliberately scheduled for later (back-off, Retry-After): the sweeper leaves the
    # handoff alone until then.
    retry_at: datetime | None = None
    # A2A targets: the peer's task and its last known state (a TaskState name such as "WORKING").
    remote_task_id: str | None = None
    remote_state: str | None = None
    # Automatic hand-back: watching B's thread, and since when B's reply has been complete.
    watch: Literal["watching", "stopped", "done"] | None = None
    reply_complete_at: datetime | None = None
    # The sweeper: when it last re-queued this handoff's work, how many times in a row it has done so,
    # and the ``updated_at`` it saw then (a different one means the handoff moved on: the count restarts).
    swept_at: datetime | None = None
    sweeps: int = 0
    sweep_mark: datetime | None = None


def has_pending_work(state: HandoffState) -> bool:
    """Whether the broker still owes this handoff a step: delivery (still ``accepted``), the cross-link
    into the source thread (once delivered), or a hand-back into it."""
    return (
        state.status == "accepted"
        or (state.status in ("delivered", "handedBack") and state.crosslink == "pending")
        or any(delivery.status == "pending" for delivery in state.handbacks.values())
    )


class StoredHandback(BaseModel):
    """A hand-back as received. Written once, never changed."""

    model_config = ConfigDict(frozen=True)

    seq: int
    received_at: datetime
    request: HandbackRequest
    agent: str
    caller: str
    automatic: bool = False
    body_hash: str | None = None  # set when the hand-back came with an Idempotency-Key


class HandoffRecord(BaseModel):
    """A handoff as read back from storage."""

    stored: StoredRequest
    state: HandoffState
    handbacks: list[StoredHandback] = Field(default_factory=list)

    @property
    def id(self) -> str:
        return self.stored.id


class LinkRecord(BaseModel):
    """One direction of a thread-to-thread link."""

    agent: str
    thread_id: str
    relation: Literal["handedOffTo", "receivedFrom"]
    peer_agent: str
    peer_thread_id: str
    handoff_id: str
    created_at: datetime


class HandoffStore(Protocol):
    """Durable state: handoffs, hand-backs, audit events and links."""

    def create(self, stored: StoredRequest, state: HandoffState) -> bool:
        """Insert a new handoff atomically; False when one with this id already exists."""

    def get(self, handoff_id: str) -> HandoffRecord | None:
        """The handoff with its state and hand-backs, or None."""

    def update_state(self, handoff_id: str, mutate: Callable[[HandoffState], None]) -> HandoffState:
        """Apply ``mutate`` to the current state and save it, retrying on concurrent writes."""

    def add_handback(
        self, handoff_id: str, make: Callable[[int], StoredHandback], claim: str | None = None
    ) -> tuple[StoredHandback, bool]:
        """Insert the next hand-back (sequence numbers start at 1) and whether it is new. With ``claim``
        (a key derived from an Idempotency-Key) the insert is atomic with claiming it: when the claim
        exists already, nothing is inserted and the hand-back that holds it is returned."""

    def append_audit(self, handoff_id: str, type: str, actor: str, details: dict[str, Any]) -> AuditEvent:
        """Insert the next audit event; never updates or deletes one."""

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


class AgentCallError(Exception):
    """A call to an agent (or ARM) failed. ``transient`` failures are retried through the queue."""

    def __init__(
        self, reason: str, *, transient: bool, status: int | None = None, retry_after: float | None = None
    ) -> None:
        reason = redact(reason)  # it becomes lastError and audit text
        super().__init__(reason)
        self.reason = reason
        self.transient = transient
        self.status = status
        self.retry_after = retry_after


class AgentGateway(Protocol):
    """The agents' data-plane APIs, reached with the broker's managed identity."""

    def create_thread(self, agent: Any, text: str) -> str:
        """Start a thread on ``agent`` with ``text`` as its first message; returns the thread id."""

    def fire_trigger(self, agent: Any, payload: dict[str, Any]) -> str | None:
        """Call the agent's HTTP trigger with ``payload``; returns the thread id when the agent says."""

    def find_thread(self, agent: Any, needle: str, since: datetime | None = None) -> str | None:
        """Id of the thread the broker opened for handoff ``needle``, if any (its start message begins
        with the handoff's header and ends with its start marker; see messages.is_handoff_thread).
        Threads are read newest first, page by page, down to those created before ``since`` (all of
        them without it, up to a cap); raises a permanent :class:`AgentCallError` when the cap is
        reached before the answer is certain."""

    def post_message(self, agent: Any, thread_id: str, text: str) -> str | None:
        """Post ``text`` into an existing thread; the new message's id when the answer gives one."""

    def find_message(
        self, agent: Any, thread_id: str, needle: str, since: datetime | None = None
    ) -> dict[str, Any] | None:
        """The broker's message with marker line ``needle`` in the thread (its last line, under the
        handoff's header; see messages.is_marked), read newest first down to messages older than
        ``since``, as :meth:`find_thread` does."""

    def has_message(self, agent: Any, thread_id: str, needle: str, since: datetime | None = None) -> bool:
        """Whether :meth:`find_message` finds the message."""

    def get_thread(self, agent: Any, thread_id: str) -> dict[str, Any]:
        """The thread object (``GET /api/v1/threads/{id}``), camelCase as the agent answers."""

    def list_messages(self, agent: Any, thread_id: str) -> list[dict[str, Any]]:
        """The thread's recent messages, oldest first."""


@dataclass(frozen=True)
class RemoteArtifact:
    """One artifact of a remote (A2A) task: its text parts joined, and its first JSON data part."""

    name: str | None
    text: str
    data: dict[str, Any] | None


@dataclass(frozen=True)
class RemoteTask:
    """What the broker needs to know about a task on an A2A peer (free of any SDK type)."""

    task_id: str
    context_id: str
    state: str  # the TaskState name without its prefix: SUBMITTED, WORKING, COMPLETED, ...
    status_text: str = ""
    artifacts: tuple[RemoteArtifact, ...] = ()


class RemoteAgentGateway(Protocol):
    """Agents reached over A2A: send the handoff as a message, then follow the task it started."""

    def send_message(
        self, agent: Any, *, message_id: str, context_id: str, text: str, data: dict[str, Any]
    ) -> RemoteTask:
        """``SendMessage`` (returning at once); the task the peer created for it."""

    def get_task(self, agent: Any, task_id: str) -> RemoteTask:
        """``GetTask``: the task's current state and artifacts."""

    def find_task(self, agent: Any, *, context_id: str, message_id: str) -> RemoteTask | None:
        """The peer's task that ``message_id`` started, if the peer can list tasks; None otherwise."""


# ---------------------------------------------------------------- lifecycle and history ports

LifecyclePoint = Literal["delivered", "handedBack", "failed", "alertResolved"]
LIFECYCLE_POINTS: tuple[str, ...] = ("delivered", "handedBack", "failed", "alertResolved")


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
