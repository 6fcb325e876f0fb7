"""What the broker stores about a handoff, and the ports through which the service layer reaches
storage, the delivery queue and the agents. Adapters implement the ports; the domain imports no SDK."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from handoff.domain.models import HandbackRequest, HandoffRequest, HandoffStatus, HandoffWarning
from handoff.domain.redaction import redact

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


def handoff_warnings(state: HandoffState) -> list[HandoffWarning]:
    """What a reader of the handoff must see beside its status: a cross-link that failed for good leaves
    the handoff delivered, but the source thread never got the link to B's thread."""
    if state.crosslink != "failed":
        return []
    detail = state.last_error or "the link to the target's thread could not be posted into the source thread"
    return [HandoffWarning(code="crossLinkFailed", detail=detail)]


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


def state_version(state: HandoffState) -> str:
    """A version of a handoff's state: equal exactly when the states are equal (a digest of its JSON), so
    audit events appended meanwhile, which leave the state as it is, do not change it."""
    return hashlib.sha256(state.model_dump_json().encode("utf-8", "surrogatepass")).hexdigest()[:32]


class HandoffRecord(BaseModel):
    """A handoff as read back from storage. ``version`` is the :func:`state_version` of its state as
    read: a write conditioned on it fails when the state has changed since."""

    stored: StoredRequest
    state: HandoffState
    handbacks: list[StoredHandback] = Field(default_factory=list)
    version: str | None = None

    @property
    def id(self) -> str:
        return self.stored.id


@dataclass(frozen=True)
class NewEvent:
    """An audit event to append with a state change: the store numbers it, stamps its time and chains its
    hash (see :mod:`handoff.domain.audit`)."""

    type: str
    actor: str
    details: dict[str, Any]


class LinkRecord(BaseModel):
    """One direction of a thread-to-thread link."""

    agent: str
    thread_id: str
    relation: Literal["handedOffTo", "receivedFrom"]
    peer_agent: str
    peer_thread_id: str
    handoff_id: str
    created_at: datetime


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


@dataclass(frozen=True)
class RemoteArtifact:
    """One artifact of a remote (A2A) task: its text parts joined, its first JSON data part, and the
    first data part tagged with the contract's A2A extension as a ``handback-request`` (``contract``)."""

    name: str | None
    text: str
    data: dict[str, Any] | None
    contract: dict[str, Any] | None = None


@dataclass(frozen=True)
class RemoteTask:
    """What the broker needs to know about a task on an A2A peer (free of any SDK type)."""

    task_id: str
    context_id: str
    state: str  # the TaskState name without its prefix: SUBMITTED, WORKING, COMPLETED, ...
    status_text: str = ""
    artifacts: tuple[RemoteArtifact, ...] = ()


# ---------------------------------------------------------------- lifecycle and history ports

LifecyclePoint = Literal["delivered", "handedBack", "failed", "alertResolved"]
LIFECYCLE_POINTS: tuple[str, ...] = ("delivered", "handedBack", "failed", "alertResolved")
