"""Accepting handoffs: from agents (REST, MCP, A2A) and from the broker itself (alerts).

A handoff is validated, authorized against the caller and the safe-chain rules, redacted, stored with
insert-if-absent and queued for delivery. With an ``Idempotency-Key`` its id is derived from (source
agent, key), so concurrent retries meet in storage and yield one handoff.
"""

from __future__ import annotations

import uuid
from typing import Any

from handoff.domain.audit_events import EventType
from handoff.domain.auth import Caller
from handoff.domain.chains import ChainMember
from handoff.domain.errors import (
    Conflict,
    FieldError,
    Forbidden,
    ServiceUnavailable,
    Unprocessable,
    single_field,
)
from handoff.domain.ids import canonical_hash, check_idempotency_key, idempotent_id, is_uuid
from handoff.domain.intake import parse_body, redacted
from handoff.domain.models import HandoffRequest, HandoffView
from handoff.domain.records import HandoffRecord, HandoffState, NewEvent, StoredRequest
from handoff.domain.redaction import HANDOFF_TEXT_FIELDS, redact
from handoff.domain.registry import SYSTEM_SOURCES, AgentConfig, Registry
from handoff.domain.work import Deliver, Work
from handoff.ports import DeliveryQueue, StorageUnavailable
from handoff.services.alongside import alongside
from handoff.services.context import ServiceContext
from handoff.services.listing import keep_indexed
from handoff.services.queries import Queries

IDEMPOTENCY_SECRET = "idempotency"  # noqa: S105 - the name of the secret's row, not a secret


def registered_agent(registry: Registry, ref: str, field: str) -> AgentConfig:
    """The registered agent ``ref`` names (name or resource id); 422 on ``field`` otherwise."""
    agent = registry.find(ref)
    if agent is None:
        raise single_field(Unprocessable, field, f"'{ref}' is not a registered agent")
    return agent


def index_and_enqueue(ctx: ServiceContext, record: HandoffRecord) -> None:
    """Write a new handoff's index entry while its delivery is queued: independent writes, so the request
    waits for one round trip. The entry is insert-if-absent: should the worker deliver first, its
    "delivered" entry stays."""
    alongside(
        lambda: keep_indexed(ctx, record, if_absent=True),
        lambda: enqueue(ctx.queue, Deliver(handoff_id=record.id)),
    )


def enqueue(queue: DeliveryQueue, message: Work) -> None:
    """Queue the first attempt of work a request stored; 503 (retry with the same key) when the queue
    cannot be reached: the work is stored, and the retry or the sweeper queues it."""
    try:
        queue.send(message.wire())
    except StorageUnavailable:
        raise ServiceUnavailable(
            "the handoff is stored but could not be queued; retry with the same Idempotency-Key",
            headers={"Retry-After": "5"},
        ) from None


class Intake:
    """Accepting handoffs."""

    def __init__(self, ctx: ServiceContext, queries: Queries) -> None:
        self.ctx = ctx
        self.queries = queries
        self._id_secret: bytes | None = None

    def accept(
        self, body: bytes, caller: Caller, idempotency_key: str | None = None
    ) -> tuple[HandoffView, bool]:
        """Validate, store and enqueue a handoff. Returns the handoff and whether it is new.

        With an ``Idempotency-Key`` the handoff id is derived from (source agent, key), so storage's
        insert-if-absent makes concurrent retries yield one handoff; a replay with a different body is
        refused with 409.
        """
        request = parse_body(body, HandoffRequest)
        return self.accept_request(request, caller, idempotency_key)

    def accept_request(
        self, request: HandoffRequest, caller: Caller, idempotency_key: str | None = None
    ) -> tuple[HandoffView, bool]:
        """:meth:`accept` for an already parsed request (used by non-HTTP entrypoints)."""
        ctx = self.ctx
        source, target = self._parties(request, caller)
        root_id, depth, parent = None, 0, None
        if request.parent_handoff_id:
            parent = self._parent(request.parent_handoff_id, caller)
            root_id = parent.stored.root_id
            depth = ctx.chains.check_depth(parent, source.name, target.name, caller)
        key = check_idempotency_key(idempotency_key) if idempotency_key is not None else None
        handoff_id = self._idempotent_id(source.name, key) if key is not None else str(uuid.uuid4())
        now = ctx.clock()
        request, redactions = redacted(request, HANDOFF_TEXT_FIELDS)  # before anything is stored
        normalized = request.model_copy(
            update={
                "source": request.source.model_copy(update={"agent": source.name}),
                "target": request.target.model_copy(update={"agent": target.name}),
            }
        )
        stored = StoredRequest(
            id=handoff_id,
            request=normalized,
            source_agent=source.name,
            target_agent=target.name,
            root_id=root_id or handoff_id,
            depth=depth,
            body_hash=canonical_hash(normalized),
            idempotency_key=redact(key) if key else None,
            created_at=now,
            caller=caller.describe(),
        )
        member = ChainMember(
            handoff_id=handoff_id, root_id=stored.root_id, parent_id=request.parent_handoff_id,
            source_agent=source.name, target_agent=target.name, depth=depth, created_at=now,
        )  # fmt: skip
        # A root handoff starts its chain in the write that creates it; a child takes its pair slot in
        # the root's chain first (and gives it back if it is not created).
        slot = ctx.chains.reserve(member, parent, caller) if parent is not None else None
        chain = ctx.chains.starts(member) if parent is None else None
        state = HandoffState(updated_at=now)
        accepted = NewEvent(EventType.ACCEPTED, caller.describe(), {
            "source": source.name, "target": target.name, "intent": request.intent,
            "parentHandoffId": request.parent_handoff_id, "idempotencyKey": key is not None,
            **({"redactions": redactions} if redactions else {}),
        })  # fmt: skip
        try:
            created = ctx.store.create(stored, state, [accepted], chain)
        except Exception:
            ctx.chains.release(slot)
            raise
        if not created:
            ctx.chains.release(slot)
            return self._replay(stored)
        record = HandoffRecord(stored=stored, state=state)
        index_and_enqueue(ctx, record)
        # Answer from what was just written: no read-back in the request path, and the answer is
        # "accepted" even when a fast worker has already started delivering.
        return self.queries.view(record), True

    def accept_system(
        self,
        request: HandoffRequest,
        handoff_id: str,
        caller: Caller,
        details: dict[str, Any] | None = None,
    ) -> tuple[HandoffRecord, bool]:
        """Store and enqueue a handoff the broker starts itself (``request.source.agent`` is one of
        :data:`~handoff.domain.registry.SYSTEM_SOURCES`, e.g. ``azure-monitor`` for alerts).

        Such a handoff has no source thread: nothing is cross-linked, and hand-backs are kept with
        delivery ``noSourceThread``. The id is chosen by the caller, so storage's insert-if-absent makes a
        repeat a no-op; returns the record and whether it is new.
        """
        ctx = self.ctx
        source = request.source.agent
        if source not in SYSTEM_SOURCES or request.source.thread_id:
            raise ValueError(f"{source!r} is not a system source of handoffs (or has a thread)")
        target = registered_agent(ctx.registry, request.target.agent, "/target/agent")
        now = ctx.clock()
        request, redactions = redacted(request, HANDOFF_TEXT_FIELDS)
        normalized = request.model_copy(
            update={"target": request.target.model_copy(update={"agent": target.name})}
        )
        stored = StoredRequest(
            id=handoff_id,
            request=normalized,
            source_agent=source,
            target_agent=target.name,
            root_id=handoff_id,
            body_hash=canonical_hash(normalized),
            created_at=now,
            caller=caller.describe(),
            shared_memory=tuple(str(name) for name in (details or {}).get("sharedMemory") or ()),
            alert_rule=(details or {}).get("alertRule"),
        )
        state = HandoffState(updated_at=now)
        accepted = NewEvent(
            EventType.ACCEPTED,
            caller.describe(),
            {
                "source": source,
                "target": target.name,
                "intent": request.intent,
                **(details or {}),
                **({"redactions": redactions} if redactions else {}),
            },
        )
        if not ctx.store.create(stored, state, [accepted]):
            existing = ctx.get_record(handoff_id)
            if existing.state.status == "accepted":
                # Heals an entry the first attempt did not write (never one a worker wrote since the read).
                keep_indexed(ctx, existing, if_absent=True)
            return existing, False
        record = HandoffRecord(stored=stored, state=state)
        index_and_enqueue(ctx, record)
        return record, True

    def _parties(self, request: HandoffRequest, caller: Caller) -> tuple[AgentConfig, AgentConfig]:
        """The registered source and target agents, once the caller may hand off from one to the other."""
        source = registered_agent(self.ctx.registry, request.source.agent, "/source/agent")
        target = registered_agent(self.ctx.registry, request.target.agent, "/target/agent")
        if source.name == target.name:
            raise single_field(Unprocessable, "/target/agent", "an agent cannot hand off to itself")
        self.ctx.authorizer.hand_off(caller, source, target)
        if source.is_a2a and request.source.thread_id:
            raise single_field(
                Unprocessable, "/source/threadId", "an A2A agent has no SRE Agent thread; leave threadId out"
            )
        return source, target

    def _replay(self, stored: StoredRequest) -> tuple[HandoffView, bool]:
        existing = self.ctx.store.get(stored.id)
        if existing is None:  # pragma: no cover - insert conflicted, so it exists
            raise ServiceUnavailable("handoff is being created; retry")
        if existing.stored.body_hash != stored.body_hash:
            raise Conflict(
                "Idempotency-Key was already used with a different body for this source agent",
                errors=[FieldError(field="Idempotency-Key", message="reused with a different body")],
            )
        if existing.state.status == "accepted":
            # Heals an entry the first request did not write. Only if absent: a worker may have written
            # a later status since this read, which this older one must not replace.
            keep_indexed(self.ctx, existing, if_absent=True)
        if existing.state.status == "accepted" and existing.state.attempts == 0:
            # The first request may have failed to enqueue (it answered 503): make the replay deliver.
            enqueue(self.ctx.queue, Deliver(handoff_id=stored.id))
        return self.queries.view(existing), False

    def _idempotent_id(self, source: str, key: str) -> str:
        """The handoff id for (source, Idempotency-Key), under the broker's own secret (read once)."""
        if self._id_secret is None:
            self._id_secret = self.ctx.store.secret(IDEMPOTENCY_SECRET)
        return idempotent_id(self._id_secret, source, key)

    def _parent(self, parent_id: str, caller: Caller) -> HandoffRecord:
        """The parent of a new handoff: it must exist and the caller must be part of its chain (422
        either way, with the same words, so the answer does not tell which)."""
        parent = self.ctx.store.get(parent_id) if is_uuid(parent_id) else None
        if parent is not None and self.queries.may_see(caller, parent):
            return parent
        if parent is not None:
            self.ctx.authorizer.refuse(caller, "attach a child to", parent_id, Forbidden("not in its chain"))
        raise single_field(Unprocessable, "/parentHandoffId", "no handoff with this id")
