"""Use cases: accept a handoff, deliver it, take a hand-back, read state, audit and links.

Entrypoints (HTTP, queue, timer, and later MCP/A2A/alerts) call these and map the result or the
:class:`~handoff.domain.errors.Problem` they raise. This module imports no Azure SDK: storage, the queue and
the agents are reached through the ports in :mod:`handoff.domain.records`.
"""

from __future__ import annotations

import contextlib
import contextvars
import hashlib
import hmac
import json
import logging
import random
import re
import uuid
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from handoff.domain.audit import AuditVerification, verify_chain
from handoff.domain.auth import SYSTEM, Authorizer, Caller
from handoff.domain.chains import ChainMember
from handoff.domain.errors import (
    BadRequest,
    Conflict,
    FieldError,
    Forbidden,
    NotFound,
    ServiceUnavailable,
    Unprocessable,
    single_field,
)
from handoff.domain.history import HistoryPage, HistoryQuery
from handoff.domain.intake import load_json
from handoff.domain.messages import (
    MessageContext,
    crosslink_message,
    handback_message,
    marker,
    start_message,
    thread_url,
    trigger_payload,
)
from handoff.domain.models import (
    PATH_SEGMENT_MESSAGE,
    AuditLog,
    HandbackRequest,
    HandbackView,
    HandoffRequest,
    HandoffView,
    Health,
    ThreadEndpoint,
    ThreadLink,
    ThreadLinks,
    field_errors,
    is_path_segment_id,
)
from handoff.domain.records import (
    AgentCallError,
    HandbackDelivery,
    HandoffRecord,
    HandoffState,
    LinkRecord,
    StoredHandback,
    StoredRequest,
)
from handoff.domain.redaction import HANDBACK_TEXT_FIELDS, HANDOFF_TEXT_FIELDS, redact, redact_model
from handoff.domain.registry import SYSTEM_SOURCES, AgentConfig, HttpTriggerDelivery, Registry
from handoff.ports import (
    AgentGateway,
    ChainStore,
    DeliveryQueue,
    HandoffStore,
    HistoryIndex,
    LeaseBusy,
    LeaseLost,
    LifecycleListener,
    NoLifecycleListener,
    RemoteAgentGateway,
    StorageUnavailable,
)
from handoff.services.chain_rules import ChainRules
from handoff.services.followup import FOLLOW_UP_OPS, FollowUp
from handoff.settings import Settings

log = logging.getLogger("handoff")

MAX_BODY_BYTES = 256 * 1024
# A replayed hand-back whose first request stored it this long ago without queueing it is finished by
# the replay (the first request must have died in between).
REPLAY_TAKEOVER_SECONDS = 30
SEEN_BEFORE_LIMIT = 3
IDEMPOTENCY_SECRET = "idempotency"  # noqa: S105 - the name of the secret's row, not a secret
AUDIT_PAGE = 1000  # audit events per page (and the most a caller may ask for)
# The sweeper re-queues a handoff's stranded work at most this many times without the handoff's state
# changing in between; the next time it marks the work failed instead.
MAX_SWEEPS = 5
# ... and only once it has been idle this long: with a short HANDOFF_SWEEP_AFTER_SECONDS, five re-queues
# come within minutes, and a handoff merely waiting in a long queue backlog must not be failed for it.
GIVE_UP_AFTER = timedelta(minutes=30)
ModelT = TypeVar("ModelT", bound=BaseModel)


# The handoff this worker holds the lease of, and its token (set while a queue message is processed):
# every state write of the worker checks that it still holds the lease and renews it.
_HELD: contextvars.ContextVar[tuple[str, str] | None] = contextvars.ContextVar("held_lease", default=None)


def utcnow() -> datetime:
    """The current UTC time (the service's clock by default)."""
    return datetime.now(UTC)


def parse_body(body: bytes, model: type[ModelT]) -> ModelT:
    """Parse a JSON request body: 413 when too large, 400 when not JSON, 422 when it breaks the schema
    or the intake limits (nesting depth, finite numbers, text; see :mod:`handoff.domain.intake`)."""
    data = load_json(body, limit_bytes=MAX_BODY_BYTES)
    if not isinstance(data, dict):
        raise single_field(Unprocessable, "/", "must be a JSON object")
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        errors = field_errors(exc)
        summary = "; ".join(f"{e.field}: {e.message}" for e in errors[:5])
        raise Unprocessable(summary, errors=errors) from None


def canonical_hash(model: BaseModel) -> str:
    """Hash of the parsed request (sorted keys, defaults filled), so equal bodies hash equal."""
    data = model.model_dump(mode="json", by_alias=True)
    canonical = json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canonical.encode()).hexdigest()


def backoff_seconds(attempt: int, retry_after: float | None, base: float, cap: float) -> float:
    """Delay before attempt ``attempt + 1``: exponential with jitter, never less than ``Retry-After``."""
    delay = min(cap, base * (2 ** max(0, attempt - 1)))
    delay = delay * (0.5 + random.random() / 2)  # noqa: S311 - jitter, not security
    if retry_after is not None:
        delay = max(delay, retry_after)
    return min(max(delay, 0.0), max(cap, retry_after or 0.0))


class HandoffService:
    """The broker's use cases."""

    def __init__(
        self,
        *,
        settings: Settings,
        registry: Registry,
        store: HandoffStore,
        queue: DeliveryQueue,
        agents: AgentGateway,
        clock: Callable[[], datetime] = utcnow,
        chains: ChainStore | None = None,
        remote_agents: RemoteAgentGateway | None = None,
        lifecycle: LifecycleListener | None = None,
        history: HistoryIndex | None = None,
        authorizer: Authorizer | None = None,
    ) -> None:
        self.settings = settings
        self.registry = registry
        self.authorizer = authorizer or Authorizer(registry)
        self.store = store
        self.queue = queue
        self.agents = agents
        self.clock = clock
        self.chains = ChainRules(
            store=store,
            chains=chains,
            max_depth=settings.max_chain_depth,
            max_pair_repeats=settings.max_pair_repeats,
            base_url=settings.base_url,
        )
        self.remote_agents = remote_agents
        self.followup = FollowUp(self)
        # Queue-message kinds handled outside this class (``op`` -> handler(message, dequeue_count)).
        self.op_handlers: dict[str, Callable[[dict[str, Any], int], None]] = {}
        self.lifecycle: LifecycleListener = lifecycle or NoLifecycleListener()
        self.history = history
        self._id_secret: bytes | None = None

    # ------------------------------------------------------------------ accept

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
        source = self._registered(request.source.agent, "/source/agent")
        target = self._registered(request.target.agent, "/target/agent")
        if source.name == target.name:
            raise single_field(Unprocessable, "/target/agent", "an agent cannot hand off to itself")
        self.authorizer.hand_off(caller, source, target)
        if source.is_a2a and request.source.thread_id:
            raise single_field(
                Unprocessable, "/source/threadId", "an A2A agent has no SRE Agent thread; leave threadId out"
            )
        root_id, depth, parent = None, 0, None
        if request.parent_handoff_id:
            parent = self._parent(request.parent_handoff_id, caller)
            root_id = parent.stored.root_id
            depth = self.chains.check_depth(parent, source.name, target.name, caller)
        if idempotency_key is not None:
            key = idempotency_key.strip()
            if not key or len(key) > 200 or not key.isprintable():
                raise single_field(BadRequest, "Idempotency-Key", "must be 1-200 printable characters")
            handoff_id = self._idempotent_id(source.name, key)
        else:
            key = None
            handoff_id = str(uuid.uuid4())
        now = self.clock()
        request, redactions = _redacted(request, HANDOFF_TEXT_FIELDS)  # before anything is stored
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
        slot = self.chains.reserve(member, parent, caller)
        state = HandoffState(updated_at=now)
        try:
            created = self.store.create(stored, state)
        except Exception:
            self.chains.release(slot)
            raise
        if not created:
            self.chains.release(slot)
            return self._replay(stored)
        self.store.append_audit(
            handoff_id,
            "accepted",
            caller.describe(),
            {"source": source.name, "target": target.name, "intent": request.intent,
             "parentHandoffId": request.parent_handoff_id, "idempotencyKey": key is not None,
             **({"redactions": redactions} if redactions else {})},
        )  # fmt: skip
        self._enqueue({"op": "deliver", "handoffId": handoff_id, "attempt": 1})
        # Answer from what was just written: no read-back in the request path, and the answer is
        # "accepted" even when a fast worker has already started delivering.
        return self.view(HandoffRecord(stored=stored, state=state)), True

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
        source = request.source.agent
        if source not in SYSTEM_SOURCES or request.source.thread_id:
            raise ValueError(f"{source!r} is not a system source of handoffs (or has a thread)")
        target = self._registered(request.target.agent, "/target/agent")
        now = self.clock()
        request, redactions = _redacted(request, HANDOFF_TEXT_FIELDS)
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
        created = self.store.create(stored, HandoffState(updated_at=now))
        if created:
            self.store.append_audit(
                handoff_id,
                "accepted",
                caller.describe(),
                {
                    "source": source,
                    "target": target.name,
                    "intent": request.intent,
                    **(details or {}),
                    **({"redactions": redactions} if redactions else {}),
                },
            )
            self._enqueue({"op": "deliver", "handoffId": handoff_id, "attempt": 1})
        record = self.store.get(handoff_id)
        assert record is not None
        return record, created

    def _replay(self, stored: StoredRequest) -> tuple[HandoffView, bool]:
        existing = self.store.get(stored.id)
        if existing is None:  # pragma: no cover - insert conflicted, so it exists
            raise ServiceUnavailable("handoff is being created; retry")
        if existing.stored.body_hash != stored.body_hash:
            raise Conflict(
                "Idempotency-Key was already used with a different body for this source agent",
                errors=[FieldError(field="Idempotency-Key", message="reused with a different body")],
            )
        if existing.state.status == "accepted" and existing.state.attempts == 0:
            # The first request may have failed to enqueue (it answered 503): make the replay deliver.
            self._enqueue({"op": "deliver", "handoffId": stored.id, "attempt": 1})
        return self.view(existing), False

    def _idempotent_id(self, source: str, key: str) -> str:
        """The handoff id for (source, Idempotency-Key): a UUID from an HMAC under the broker's own secret,
        so equal keys meet in storage's insert-if-absent yet nobody can compute the id from the key."""
        if self._id_secret is None:
            self._id_secret = self.store.secret(IDEMPOTENCY_SECRET)
        return idempotent_id(self._id_secret, source, key)

    def _parent(self, parent_id: str, caller: Caller) -> HandoffRecord:
        """The parent of a new handoff: it must exist and the caller must be part of its chain (422
        either way, with the same words, so the answer does not tell which)."""
        parent = self.store.get(parent_id) if _plausible_id(parent_id) else None
        if parent is not None and self._may_see(caller, parent):
            return parent
        if parent is not None:
            self.authorizer.refuse(caller, "attach a child to", parent_id, Forbidden("not in its chain"))
        raise single_field(Unprocessable, "/parentHandoffId", "no handoff with this id")

    def _may_see(self, caller: Caller, record: HandoffRecord) -> bool:
        """Whether ``caller`` is an operator or an agent of the record's chain (the chain index is read
        only when the record's own two agents do not settle it)."""
        identity = self.authorizer.identity(caller)
        if identity.operator or identity.agents is None:
            return True
        own = {record.stored.source_agent, record.stored.target_agent}
        return identity.is_any(own) or identity.is_any(self.chain_agents(record))

    def chain_agents(self, record: HandoffRecord) -> set[str]:
        """The agents of the handoff's chain (from the chain index)."""
        agents = {record.stored.source_agent, record.stored.target_agent}
        for member in self.chains.members(record.stored.root_id):
            agents.update((member.source_agent, member.target_agent))
        return agents

    def readable_record(self, handoff_id: str, caller: Caller, action: str = "read") -> HandoffRecord:
        """The stored handoff if ``caller`` may see it: an agent of its chain or an operator. Otherwise the
        same 404 as for an id that does not exist, so existence does not leak."""
        record = self.get_record(handoff_id)
        if self._may_see(caller, record):
            return record
        raise self.authorizer.not_found(caller, action, handoff_id, f"no handoff with id '{handoff_id}'")

    def search_history(self, query: HistoryQuery, caller: Caller) -> HistoryPage:
        """``GET /api/history``: earlier investigations the caller's agents took part in (all of them for an
        operator)."""
        if self.history is None or not hasattr(self.history, "search"):
            raise ServiceUnavailable("the history index is not configured")
        identity = self.authorizer.identity(caller)
        agents = None if identity.operator or identity.agents is None else identity.agents
        return self.history.search(query, agents)  # type: ignore[no-any-return]

    def _registered(self, ref: str, field: str) -> AgentConfig:
        agent = self.registry.find(ref)
        if agent is None:
            raise single_field(Unprocessable, field, f"'{ref}' is not a registered agent")
        return agent

    def _enqueue(self, message: dict[str, Any], delay: float = 0) -> None:
        try:
            self.queue.send(message, delay)
        except StorageUnavailable:
            raise ServiceUnavailable(
                "the handoff is stored but could not be queued; retry with the same Idempotency-Key",
                headers={"Retry-After": "5"},
            ) from None

    # ------------------------------------------------------------------ read

    def get_record(self, handoff_id: str) -> HandoffRecord:
        """The stored handoff, or 404."""
        record = self.store.get(handoff_id) if _plausible_id(handoff_id) else None
        if record is None:
            raise NotFound(f"no handoff with id '{handoff_id}'")
        return record

    def get(self, handoff_id: str, caller: Caller) -> HandoffView:
        """``GET /api/handoffs/{id}``, with the handoff's place in its chain (parent and children)."""
        record = self.readable_record(handoff_id, caller)
        return self.view(record).model_copy(update={"chain": self.chains.view(record)})

    def audit(
        self, handoff_id: str, caller: Caller, top: int = AUDIT_PAGE, continuation_token: str | None = None
    ) -> AuditLog:
        """``GET /api/handoffs/{id}/audit``: one page of events, oldest first, with a token for the next."""
        after = _audit_position(continuation_token)
        self.readable_record(handoff_id, caller, "read the audit of")
        events = self.store.list_audit(handoff_id, after, top + 1)
        more = len(events) > top
        events = events[:top]
        token = str(events[-1].seq) if more and events else None
        return AuditLog(handoff_id=handoff_id, events=events, continuation_token=token)

    def verify_audit(self, handoff_id: str, caller: Caller) -> AuditVerification:
        """``GET /api/handoffs/{id}/audit/verify``: recompute the hash chain over every stored event."""
        self.readable_record(handoff_id, caller, "verify the audit of")
        return verify_chain(handoff_id, self.store.list_audit(handoff_id))

    def view(self, record: HandoffRecord) -> HandoffView:
        """The public view of a stored handoff."""
        stored, state = record.stored, record.state
        source = self.registry.find(stored.source_agent)
        target = self.registry.find(stored.target_agent)
        source_thread = stored.request.source.thread_id
        base = f"{self.settings.base_url}/api/handoffs/{stored.id}"
        links = {"self": base, "audit": f"{base}/audit", "handback": f"{base}/handback"}
        handbacks = [
            HandbackView(
                seq=hb.seq,
                received_at=hb.received_at,
                agent=hb.agent,
                thread_id=hb.request.thread_id,
                outcome=hb.request.outcome,
                summary=hb.request.summary,
                root_cause=hb.request.root_cause,
                recommended_actions=hb.request.recommended_actions,
                evidence=hb.request.evidence,
                delivery=state.handbacks.get(hb.seq, HandbackDelivery()).status,
                posted_at=state.handbacks.get(hb.seq, HandbackDelivery()).posted_at,
                automatic=hb.automatic,
            )
            for hb in record.handbacks
        ]
        return HandoffView(
            id=stored.id,
            status=state.status,
            intent=stored.request.intent,
            source=ThreadEndpoint(
                agent=stored.source_agent,
                resource_id=source.resource_id if source else None,
                thread_id=source_thread,
                thread_url=thread_url(source.resource_id if source else None, source_thread),
            ),
            target=ThreadEndpoint(
                agent=stored.target_agent,
                resource_id=target.resource_id if target else None,
                thread_id=state.target_thread_id,
                thread_url=thread_url(target.resource_id if target else None, state.target_thread_id),
                task_id=state.remote_task_id,
            ),
            context=stored.request.context,
            parent_handoff_id=stored.request.parent_handoff_id,
            root_handoff_id=stored.root_id,
            correlation_id=stored.request.correlation_id,
            created_at=stored.created_at,
            updated_at=state.updated_at,
            delivered_at=state.delivered_at,
            handed_back_at=state.handed_back_at,
            attempts=state.attempts,
            last_error=state.last_error,
            handbacks=handbacks,
            links=links,
            depth=stored.depth,
        )

    def thread_links(self, agent_ref: str, thread_id: str, caller: Caller) -> ThreadLinks:
        """Every thread linked to this one, following chains in both directions (for the agent that owns
        the thread, or an operator)."""
        if not is_path_segment_id(thread_id):
            raise single_field(Unprocessable, "threadId", PATH_SEGMENT_MESSAGE)
        agent = self.registry.find(agent_ref)
        if agent is None:
            raise single_field(NotFound, "agent", f"'{agent_ref}' is not a registered agent")
        if not self.authorizer.may_read(caller, {agent.name}):
            raise self.authorizer.refuse(
                caller,
                "read thread links of",
                agent.name,
                Forbidden(
                    f"caller {caller.describe()} may not read the links of agent '{agent.name}' threads"
                ),
            )
        identity = self.authorizer.identity(caller)
        sees_all = identity.operator or identity.agents is None
        visible: dict[str, bool] = {}

        def may_follow(handoff_id: str) -> bool:
            # A thread can take part in several chains; follow only the handoffs the caller may read.
            if sees_all:
                return True
            if handoff_id not in visible:
                record = self.store.get(handoff_id) if _plausible_id(handoff_id) else None
                visible[handoff_id] = record is not None and self._may_see(caller, record)
            return visible[handoff_id]

        start = (agent.name, thread_id)
        seen = {start}
        frontier = [start]
        edges: dict[str, ThreadLink] = {}  # one edge per handoff, seen from the side reached first
        hops = 0
        while frontier:
            hops += 1
            next_frontier = []
            for node in frontier:
                for link in self.store.links_of(*node):
                    if not may_follow(link.handoff_id):
                        continue
                    if link.handoff_id not in edges:
                        edges[link.handoff_id] = ThreadLink(
                            handoff_id=link.handoff_id,
                            relation=link.relation,
                            thread=self._endpoint(link.agent, link.thread_id),
                            peer=self._endpoint(link.peer_agent, link.peer_thread_id),
                            hops=hops,
                        )
                    peer = (link.peer_agent, link.peer_thread_id)
                    if peer not in seen:
                        seen.add(peer)
                        next_frontier.append(peer)
            frontier = next_frontier
        ordered = sorted(edges.values(), key=lambda e: (e.hops, e.handoff_id, e.relation))
        return ThreadLinks(agent=agent.name, thread_id=thread_id, links=ordered)

    def _endpoint(self, agent_name: str, thread_id: str) -> ThreadEndpoint:
        agent = self.registry.find(agent_name)
        resource_id = agent.resource_id if agent else None
        return ThreadEndpoint(
            agent=agent_name,
            resource_id=resource_id,
            thread_id=thread_id,
            thread_url=thread_url(resource_id, thread_id),
        )

    def health(self) -> Health:
        """Whether storage answers (fast; the adapter uses short timeouts and no retries)."""
        try:
            self.store.ping()
        except Exception as exc:
            return Health(status="unhealthy", storage="unreachable", detail=type(exc).__name__)
        return Health(status="healthy", storage="reachable")

    # ------------------------------------------------------------------ hand-back

    def hand_back(
        self, handoff_id: str, body: bytes, caller: Caller, idempotency_key: str | None = None
    ) -> tuple[HandoffView, bool]:
        """Record B's findings and queue their delivery into A's thread. Returns the handoff and whether
        the hand-back is new (an ``Idempotency-Key`` replay with the same body is not; with another
        body it is refused with 409)."""
        record = self.readable_record(handoff_id, caller, "hand back on")
        request = parse_body(body, HandbackRequest)
        return self.hand_back_request(record, request, caller, idempotency_key)

    def hand_back_request(
        self,
        record: HandoffRecord,
        request: HandbackRequest,
        caller: Caller,
        idempotency_key: str | None = None,
    ) -> tuple[HandoffView, bool]:
        """:meth:`hand_back` for an already parsed request."""
        agent = self._registered(request.agent, "/agent")
        if agent.name != record.stored.target_agent:
            raise self.authorizer.refuse(
                caller,
                "hand back on",
                record.id,
                Forbidden(
                    f"only the handoff's target agent '{record.stored.target_agent}' may hand back, "
                    f"not '{agent.name}'",
                    errors=[FieldError(field="/agent", message="not the target of this handoff")],
                ),
            )
        self.authorizer.act_as(caller, agent, "hand back as")
        if record.state.status not in ("delivered", "handedBack"):
            raise Conflict(
                f"handoff {record.id} is '{record.state.status}': a hand-back is accepted only after delivery"
            )
        request, redactions = _redacted(request, HANDBACK_TEXT_FIELDS)  # the hash is of what is stored
        claim = body_hash = None
        if idempotency_key is not None:
            key = idempotency_key.strip()
            if not key or len(key) > 200 or not key.isprintable():
                raise single_field(BadRequest, "Idempotency-Key", "must be 1-200 printable characters")
            claim = hashlib.sha256(f"{agent.name.lower()}\n{key}".encode()).hexdigest()[:40]
            body_hash = canonical_hash(request)
        handback, created = self.record_handback(
            record.id, request, agent.name, caller.describe(), claim=claim, body_hash=body_hash,
            redactions=redactions,
        )  # fmt: skip
        if not created and handback.body_hash != body_hash:
            raise Conflict(
                "Idempotency-Key was already used with a different hand-back for this handoff",
                errors=[FieldError(field="Idempotency-Key", message="reused with a different body")],
            )
        return self.view(self.get_record(record.id)), created

    def record_handback(
        self,
        handoff_id: str,
        request: HandbackRequest,
        agent: str,
        actor: str,
        *,
        automatic: bool = False,
        claim: str | None = None,
        body_hash: str | None = None,
        redactions: dict[str, int] | None = None,
    ) -> tuple[StoredHandback, bool]:
        """Store a hand-back and queue its delivery into A's thread (REST, A2A results, auto hand-back).
        With ``claim`` an earlier hand-back holding it is returned instead (not new, nothing queued).
        Secrets are redacted first unless the caller did (``redactions``: what it replaced)."""
        if redactions is None:
            request, redactions = _redacted(request, HANDBACK_TEXT_FIELDS)
        now = self.clock()
        handback, created = self.store.add_handback(
            handoff_id,
            lambda seq: StoredHandback(
                seq=seq,
                received_at=now,
                request=request,
                agent=agent,
                caller=actor,
                automatic=automatic,
                body_hash=body_hash,
            ),
            claim,
        )
        if not created:
            # A replay. Finish the first request's work only if it evidently stopped between storing
            # the hand-back and queueing it; while that request may still be running, leave it be.
            stalled = now - handback.received_at > timedelta(seconds=REPLAY_TAKEOVER_SECONDS)
            if handback.seq in self.get_record(handoff_id).state.handbacks or not stalled:
                return handback, False

        def pending(state: HandoffState) -> None:
            state.handbacks.setdefault(handback.seq, HandbackDelivery())
            state.updated_at = now

        self.store.update_state(handoff_id, pending)
        details: dict[str, Any] = {"seq": handback.seq, "agent": agent, "outcome": request.outcome}
        if automatic:
            details["automatic"] = True
        if redactions:
            details["redactions"] = redactions
        self.store.append_audit(handoff_id, "handBackReceived", actor, details)
        self._enqueue({"op": "handback", "handoffId": handoff_id, "seq": handback.seq, "attempt": 1})
        return handback, created

    # ------------------------------------------------------------------ retry of failed steps

    def retry(self, handoff_id: str, caller: Caller) -> tuple[HandoffView, list[dict[str, Any]]]:
        """``POST /api/handoffs/{id}/retry`` (operators): queue the handoff's failed steps again — a
        failed delivery (the handoff is ``accepted`` again), a failed cross-link, failed hand-backs —
        each with a fresh budget of attempts. Returns the handoff and the steps queued (none when
        nothing had failed, so a second call queues nothing). A delivery retried this way looks for the
        thread an earlier attempt may have opened before opening one, as every retry does."""
        record = self.readable_record(handoff_id, caller, "retry")
        self.authorizer.require_operator(caller, "retry a handoff's failed steps", handoff_id)
        now = self.clock()
        steps: list[dict[str, Any]] = []

        def reopen(state: HandoffState) -> None:
            steps.clear()  # update_state may call this again after a concurrent write
            if state.status == "failed" and not state.target_thread_id and not state.remote_task_id:
                state.status = "accepted"
                steps.append({"op": "deliver", "step": "delivery"})
            elif state.crosslink == "failed" and state.status in ("delivered", "handedBack"):
                state.crosslink = "pending"
                steps.append({"op": "deliver", "step": "crossLink"})
            for seq, delivery in sorted(state.handbacks.items()):
                if delivery.status == "failed":
                    delivery.status, delivery.error = "pending", None
                    steps.append({"op": "handback", "step": "handBack", "seq": seq})
            if not steps:
                raise _NothingToWrite
            state.retry_at = state.swept_at = None
            state.sweeps = 0
            state.updated_at = now

        with contextlib.suppress(_NothingToWrite):
            self.store.update_state(record.id, reopen)
        if steps:
            self.store.append_audit(
                record.id,
                "retryRequested",
                caller.describe(),
                {"steps": [{k: v for k, v in step.items() if k != "op"} for step in steps]},
            )
            for step in steps:
                message = {"op": step["op"], "handoffId": record.id, "attempt": 1}
                if "seq" in step:
                    message["seq"] = step["seq"]
                # Stored before queued: should the enqueue fail, the sweeper picks the step up.
                with contextlib.suppress(StorageUnavailable):
                    self.queue.send(message)
        return self.view(self.get_record(record.id)), steps

    # ------------------------------------------------------------------ queue work

    def process(self, message: dict[str, Any], dequeue_count: int = 1) -> None:
        """Run one delivery-queue message. Transient failures reschedule through the queue.

        Whatever else raises is re-raised for the host to retry; on the last dequeue (after which the
        host poisons the message) the step is marked failed first, with the exception's type as the
        reason, so no handoff is left waiting on a message that is gone.
        """
        try:
            self._process(message, dequeue_count)
        except Exception as exc:
            if dequeue_count >= self.settings.max_dequeue_count:
                self._fail_poisoned(message, exc)
            raise

    def _process(self, message: dict[str, Any], dequeue_count: int) -> None:
        handoff_id = str(message.get("handoffId", ""))
        op = message.get("op")
        if op in self.op_handlers:
            self.op_handlers[str(op)](message, dequeue_count)
            return
        attempt = int(message.get("attempt", 1))
        record = self.store.get(handoff_id) if _plausible_id(handoff_id) else None
        if record is None or op not in ("deliver", "handback", *FOLLOW_UP_OPS):
            log.warning("dropping delivery message for unknown handoff or op: %s", message)
            return
        try:
            token = self._acquire_lease(handoff_id)
        except LeaseBusy:
            # Follow-up polls often meet the delivery that scheduled them still holding the lease:
            # come back after one poll interval rather than the delivery back-off.
            busy_delay = 15 if op not in FOLLOW_UP_OPS else max(1.0, self.settings.poll_interval_seconds)
            self.queue.send(message, busy_delay)
            return
        held = _HELD.set((handoff_id, token))
        try:
            record = self.get_record(handoff_id)
            try:
                if op == "deliver":
                    self._deliver(record)
                elif op == "handback":
                    self._deliver_handback(record, int(message["seq"]))
                else:
                    self.followup.process(record, message)
            except AgentCallError as exc:
                if op in FOLLOW_UP_OPS:
                    self.followup.after_failure(record, message, attempt, exc)
                else:
                    self._after_failure(record, message, attempt, exc)
        except LeaseLost:
            # Another worker has the handoff now (this one was stalled past its lease): it carries on,
            # and this message is done. Nothing was called after the write that found out.
            log.warning("lease on %s lost to another worker; %s left to it", handoff_id, message)
            return
        finally:
            _HELD.reset(held)
            self._release_lease(handoff_id, token)

    def _fail_poisoned(self, message: dict[str, Any], exc: Exception) -> None:
        """The host poisons ``message`` after this failure: mark its step failed now, reading nothing
        but the state entity (the rest of the record may be what cannot be read). Follow-up polls and
        other kinds of work leave the handoff as it is; their own audit says why they stopped."""
        handoff_id = str(message.get("handoffId", "")) if isinstance(message, dict) else ""
        op = message.get("op") if isinstance(message, dict) else None
        if op not in ("deliver", "handback") or not _plausible_id(handoff_id):
            log.error("poisoned message for no handoff step (%s): %s", type(exc).__name__, message)
            return
        try:
            self._fail(handoff_id, message, f"unexpected error: {type(exc).__name__}", "poisoned")
        except Exception:
            log.exception("could not mark %s failed before its message %s is poisoned", handoff_id, message)

    @property
    def lease(self) -> timedelta:
        """How long a worker's lease on a handoff lasts past its last state write."""
        return timedelta(seconds=self.settings.delivery_lease_seconds)

    def _acquire_lease(self, handoff_id: str) -> str:
        """Take the handoff's lease (an ETag-conditional write); returns this worker's token."""
        now = self.clock()
        token = uuid.uuid4().hex

        def take(state: HandoffState) -> None:
            if state.lease_until and state.lease_until > now:
                raise LeaseBusy
            state.lease_until, state.lease_owner = now + self.lease, token

        self.store.update_state(handoff_id, take)
        return token

    def _release_lease(self, handoff_id: str, token: str) -> None:
        def release(state: HandoffState) -> None:
            if state.lease_owner != token:
                raise _NothingToWrite  # taken over meanwhile: the lease is the other worker's
            state.lease_until = state.lease_owner = None

        try:
            with contextlib.suppress(_NothingToWrite):
                self.store.update_state(handoff_id, release)
        except Exception:  # the lease expires by itself
            log.exception("could not release the delivery lease of %s", handoff_id)

    def _message_context(self, record: HandoffRecord, target_thread_id: str | None = None) -> MessageContext:
        source = self.registry.find(record.stored.source_agent)
        target = self.registry.find(record.stored.target_agent)
        return MessageContext(
            base_url=self.settings.base_url,
            source_label=source.label
            if source
            else SYSTEM_SOURCES.get(record.stored.source_agent, record.stored.source_agent),
            target_label=target.label if target else record.stored.target_agent,
            target_agent_name=record.stored.target_agent,
            source_thread_url=thread_url(
                source.resource_id if source else None, record.stored.request.source.thread_id
            ),
            target_thread_url=thread_url(
                target.resource_id if target else None, target_thread_id or record.state.target_thread_id
            ),
            budget_bytes=self.settings.start_message_budget_bytes,
        )

    def _touch(self, handoff_id: str, mutate: Callable[[HandoffState], None]) -> HandoffState:
        """Change the handoff's state (and its ``updated_at``). A worker holding the handoff's lease
        writes only while it still holds it (:class:`LeaseLost` otherwise), and each write renews it."""
        now = self.clock()
        held = _HELD.get()
        token = held[1] if held is not None and held[0] == handoff_id else None

        def apply(state: HandoffState) -> None:
            if token is not None:
                if state.lease_owner != token:
                    raise LeaseLost(handoff_id)
                state.lease_until = now + self.lease
            mutate(state)
            state.updated_at = now

        return self.store.update_state(handoff_id, apply)

    def _audit_once(
        self, handoff_id: str, kind: str, details: dict[str, Any], *, retry: bool, seq: int | None = None
    ) -> None:
        """Audit the end of a step, written before the state write that ends it. On a retry (the step
        was attempted before) the audit is read first: an earlier attempt that died after this insert
        and before its state write has already written the event."""
        if retry and any(
            event.type == kind and (seq is None or event.details.get("seq") == seq)
            for event in self.store.list_audit(handoff_id)
        ):
            return
        self.store.append_audit(handoff_id, kind, "broker", details)

    def _since(self, attempted_at: datetime | None) -> datetime | None:
        """How far back a retry looks for what an earlier attempt wrote: a clock-skew margin before the
        first attempt (no limit for a record written before attempts were timed)."""
        if attempted_at is None:
            return None
        return attempted_at - timedelta(seconds=self.settings.clock_skew_seconds)

    def _deliver(self, record: HandoffRecord) -> None:
        stored, state = record.stored, record.state
        if state.status == "failed":
            return
        target = self.registry.by_name(stored.target_agent)
        if target.is_a2a:
            self.followup.deliver_a2a(record, target)
            return
        ctx = self._message_context(record)
        if not state.target_thread_id and state.status == "accepted":
            thread_id = None
            if state.create_attempted:
                # An earlier attempt may have created the thread before failing: look before creating.
                thread_id = self.agents.find_thread(target, stored.id, self._since(state.create_attempted_at))
                if thread_id:
                    self.store.append_audit(stored.id, "deliveryRecovered", "broker", {"threadId": thread_id})
            if not thread_id:
                state = self._touch(stored.id, create_attempt(self.clock()))
                mode = target.delivery.mode
                self.store.append_audit(
                    stored.id, "deliveryAttempt", "broker", {"attempt": state.attempts, "mode": mode}
                )
                ctx = replace(ctx, seen_before=self._seen_before(record))
                if isinstance(target.delivery, HttpTriggerDelivery):
                    thread_id = self.agents.fire_trigger(target, trigger_payload(record, ctx))
                else:
                    thread_id = self.agents.create_thread(target, start_message(record, ctx))
            now = self.clock()

            def delivered(s: HandoffState) -> None:
                s.status = "delivered"
                s.target_thread_id = thread_id
                s.delivered_at = now
                s.last_error = None

            # The audit event and the links before the state write that ends the step: a crash in
            # between leaves the step to be retried, and the retry adds neither twice.
            url = thread_url(target.resource_id, thread_id)
            self._audit_once(
                stored.id,
                "delivered",
                {"threadId": thread_id, "threadUrl": url},
                retry=record.state.create_attempted,
            )
            self._store_links(record, thread_id)
            state = self._touch(stored.id, delivered)
            self._notify(stored.id, "delivered", {"threadId": thread_id})
            self.followup.start_watch(record, target, thread_id)
            record = self.get_record(stored.id)
            ctx = self._message_context(record)
        self._crosslink(record, ctx)

    def _store_links(self, record: HandoffRecord, target_thread_id: str | None) -> None:
        source_thread = record.stored.request.source.thread_id
        if not source_thread or not target_thread_id:
            return
        now = self.clock()
        a, b = record.stored.source_agent, record.stored.target_agent
        self.store.add_links([
            LinkRecord(agent=a, thread_id=source_thread, relation="handedOffTo", peer_agent=b,
                       peer_thread_id=target_thread_id, handoff_id=record.id, created_at=now),
            LinkRecord(agent=b, thread_id=target_thread_id, relation="receivedFrom", peer_agent=a,
                       peer_thread_id=source_thread, handoff_id=record.id, created_at=now),
        ])  # fmt: skip

    def _crosslink(self, record: HandoffRecord, ctx: MessageContext) -> None:
        state = record.state
        source_thread = record.stored.request.source.thread_id
        if state.crosslink != "pending":
            return
        if not source_thread:
            self._touch(record.id, lambda s: setattr(s, "crosslink", "noSourceThread"))
            return
        source = self.registry.by_name(record.stored.source_agent)
        needle = marker(record.id, "crosslink")
        found = None
        if state.crosslink_attempted:
            # An earlier attempt may have posted it before failing: look back to before that attempt.
            since = self._since(state.crosslink_attempted_at)
            found = self.agents.find_message(source, source_thread, needle, since)
        if found is None:
            now = self.clock()

            def attempt(s: HandoffState) -> None:
                s.crosslink_attempted = True
                s.crosslink_attempted_at = s.crosslink_attempted_at or now

            self._touch(record.id, attempt)
            message_id = self.agents.post_message(source, source_thread, crosslink_message(record, ctx))
        else:
            message_id = _message_id(found)

        def posted(s: HandoffState) -> None:
            s.crosslink = "posted"
            s.crosslink_message_id = message_id

        details: dict[str, Any] = {"sourceThreadId": source_thread, "targetThreadUrl": ctx.target_thread_url}
        if message_id:
            details["messageId"] = message_id
        if found is not None:
            details["recovered"] = True  # posted by an earlier attempt whose answer was lost
        self._audit_once(record.id, "crossLinked", details, retry=state.crosslink_attempted)
        self._touch(record.id, posted)

    def _deliver_handback(self, record: HandoffRecord, seq: int) -> None:
        handback = next((hb for hb in record.handbacks if hb.seq == seq), None)
        delivery = record.state.handbacks.get(seq)
        if handback is None or delivery is None or delivery.status != "pending":
            return
        # The findings are history as soon as they are recorded, whether or not A's thread takes them.
        self.index_handback(record.id, seq)
        source_thread = record.stored.request.source.thread_id
        now = self.clock()
        if not source_thread:

            def no_thread(s: HandoffState) -> None:
                s.handbacks[seq].status = "noSourceThread"
                s.status = "handedBack"
                s.handed_back_at = now

            self._touch(record.id, no_thread)
            self.store.append_audit(record.id, "handedBack", "broker", {"seq": seq, "posted": False})
            self._after_handback(record.id, seq)
            return
        source = self.registry.by_name(record.stored.source_agent)
        needle = marker(record.id, f"handback:{seq}")
        found = None
        if delivery.attempted:
            since = self._since(delivery.attempted_at)
            found = self.agents.find_message(source, source_thread, needle, since)
        if found is None:

            def attempt(s: HandoffState) -> None:
                s.handbacks[seq].attempted = True
                s.handbacks[seq].attempted_at = s.handbacks[seq].attempted_at or now

            self._touch(record.id, attempt)
            message_id = self.agents.post_message(
                source, source_thread, handback_message(record, handback, self._message_context(record))
            )
        else:
            message_id = _message_id(found)

        def posted(s: HandoffState) -> None:
            s.handbacks[seq].status = "posted"
            s.handbacks[seq].posted_at = now
            s.handbacks[seq].message_id = message_id
            s.status = "handedBack"
            s.handed_back_at = now

        details: dict[str, Any] = {"seq": seq, "sourceThreadId": source_thread}
        if message_id:
            details["messageId"] = message_id
        if found is not None:
            details["recovered"] = True
        self._audit_once(record.id, "handedBack", details, retry=delivery.attempted, seq=seq)
        self._touch(record.id, posted)
        self._after_handback(record.id, seq)

    def _after_failure(
        self, record: HandoffRecord, message: dict[str, Any], attempt: int, exc: AgentCallError
    ) -> None:
        reason = exc.reason
        if exc.transient and attempt < self.settings.max_delivery_attempts:
            delay = backoff_seconds(
                attempt, exc.retry_after, self.settings.retry_base_seconds, self.settings.retry_max_seconds
            )
            due = self.clock() + timedelta(seconds=delay)

            def scheduled(s: HandoffState) -> None:
                s.last_error = reason
                s.retry_at = due  # the sweeper leaves the handoff alone until then

            self._touch(record.id, scheduled)
            self.store.append_audit(
                record.id,
                "retryScheduled",
                "broker",
                {"op": message["op"], "attempt": attempt, "reason": reason, "delaySeconds": round(delay, 1)},
            )
            self.queue.send({**message, "attempt": attempt + 1}, delay)
            return
        why = reason if not exc.transient else f"{reason} (gave up after {attempt} attempts)"
        # Park the message first: once the failure is visible, the message is already there to replay.
        self.queue.send_poison({**message, "reason": why})
        self._fail(record.id, message, why, "failed")

    def _fail(self, handoff_id: str, message: dict[str, Any], reason: str, how: str) -> None:
        """Record a final failure of one step: the handoff, its cross-link, or one hand-back.

        Decided and written on the state entity alone (one conditional update, then one audit insert),
        so it works even when the rest of the record cannot be read.
        """
        if message["op"] == "handback":
            seq = int(message["seq"])

            def handback_failed(s: HandoffState) -> None:
                if seq in s.handbacks:
                    s.handbacks[seq].status = "failed"
                    s.handbacks[seq].error = reason
                s.last_error = reason

            self._touch(handoff_id, handback_failed)
            self.store.append_audit(
                handoff_id, "handBackFailed", "broker", {"seq": seq, "reason": reason, "how": how}
            )
            return
        step: dict[str, str] = {}

        def failed(s: HandoffState) -> None:
            if s.target_thread_id or s.status != "accepted":
                step["failed"] = "crossLink"
                s.crosslink = "failed"
            else:
                step["failed"] = "delivery"
                s.status = "failed"
            s.last_error = reason

        self._touch(handoff_id, failed)
        if step["failed"] == "crossLink":
            self.store.append_audit(handoff_id, "crossLinkFailed", "broker", {"reason": reason, "how": how})
        else:
            self.store.append_audit(handoff_id, "deliveryFailed", "broker", {"reason": reason, "how": how})
            self._notify(handoff_id, "failed", {"reason": reason})

    # ------------------------------------------------------------------ lifecycle, history

    def publish_alert_resolved(self, handoff_id: str, details: dict[str, Any] | None = None) -> None:
        """Tell the lifecycle listener that the alert behind ``handoff_id`` resolved (after the caller has
        recorded its own ``alertResolved`` audit event). ``details`` may carry ``sharedMemory`` (extra
        backend names from the alert route) and ``pagerdutyIncidentId`` (the alert's custom property)."""
        self._notify(handoff_id, "alertResolved", dict(details or {}))

    def index_handback(self, handoff_id: str, seq: int, alert_rule: str | None = None) -> None:
        """Write the history index entries of hand-back ``seq`` (idempotent). Every hand-back path calls
        this once the hand-back is recorded; a failure is logged and never fails the hand-back."""
        if self.history is None:
            return
        try:
            record = self.get_record(handoff_id)
            handback = next((hb for hb in record.handbacks if hb.seq == seq), None)
            if handback is not None:
                self.history.index_handback(record, handback, alert_rule or record.stored.alert_rule)
        except Exception:
            log.exception("could not index hand-back %s of %s in the history", seq, handoff_id)

    def _after_handback(self, handoff_id: str, seq: int) -> None:
        self._notify(handoff_id, "handedBack", {"seq": seq})

    def _notify(self, handoff_id: str, point: str, details: dict[str, Any]) -> None:
        """Call the lifecycle listener; it only enqueues work, and nothing it raises reaches the handoff."""
        if isinstance(self.lifecycle, NoLifecycleListener):
            return
        try:
            self.lifecycle.on_lifecycle(self.get_record(handoff_id), point, details)
        except Exception:
            log.exception("lifecycle listener failed for %s at %s", handoff_id, point)

    def _seen_before(self, record: HandoffRecord) -> tuple[dict[str, Any], ...]:
        """Earlier investigations of the handoff's resources for its start message (never its own chain)."""
        resources = list(record.stored.request.context.resources)
        if self.history is None or not resources:
            return ()
        try:
            # Only what the two agents of this handoff could read in the history themselves.
            agents = frozenset({record.stored.source_agent, record.stored.target_agent})
            found = self.history.recent_for_resources(
                resources, record.stored.root_id, SEEN_BEFORE_LIMIT, agents
            )
        except Exception:
            log.exception("could not read the history for %s", record.id)
            return ()
        return tuple(found)

    # ------------------------------------------------------------------ sweeper

    def sweep(self) -> SweepReport:
        """Re-enqueue work left with no activity (its enqueue failed and the caller got a 503, or the
        worker crashed between two steps): handoffs still ``accepted``, cross-links and hand-backs not
        yet posted. Idle means: no state write for ``sweep_after_seconds``, no retry due within that
        time, and no worker holding the lease.

        Each handoff is swept on its own: one that raises is logged with its id, counted, and the
        sweep carries on with the rest. Work is re-queued at most once per ``sweep_after_seconds``,
        and a handoff whose work the sweeper has re-queued :data:`MAX_SWEEPS` times with no state
        change in between is given up: its pending steps are marked failed (and parked on the poison
        queue) instead of being re-queued forever. Only the state entity is read, so a request that
        cannot be read does not stop the sweep either.
        """
        now = self.clock()
        cutoff = now - timedelta(seconds=self.settings.sweep_after_seconds)
        report = SweepReport()
        for handoff_id in self.store.stale_pending(cutoff):
            try:
                self._sweep_one(handoff_id, now, cutoff, report)
            except Exception:
                report.errors += 1
                log.exception("sweeper: could not sweep handoff %s; carrying on with the others", handoff_id)
        return report

    def _sweep_one(self, handoff_id: str, now: datetime, cutoff: datetime, report: SweepReport) -> None:
        plan: dict[str, Any] = {}

        def decide(state: HandoffState) -> None:
            plan.clear()  # update_state may call this again after a concurrent write
            messages: list[dict[str, Any]] = []
            if state.status == "accepted" or (
                state.status in ("delivered", "handedBack") and state.crosslink == "pending"
            ):
                # One message covers both: a delivered handoff's deliver step is its cross-link.
                messages.append({"op": "deliver", "handoffId": handoff_id, "attempt": 1})
            for seq, delivery in sorted(state.handbacks.items()):
                if delivery.status == "pending":
                    messages.append({"op": "handback", "handoffId": handoff_id, "seq": seq, "attempt": 1})
            if (
                not messages
                or (state.swept_at is not None and state.swept_at > cutoff)
                # A retry scheduled for later (back-off, Retry-After) counts as activity when it is due.
                or (state.retry_at is not None and state.retry_at > cutoff)
                # A live worker holds the handoff (each of its state writes renews the lease).
                or (state.lease_until is not None and state.lease_until > now)
            ):
                raise _NothingToWrite  # nothing left, or not idle: leave the state as it is
            sweeps = state.sweeps + 1 if state.sweep_mark == state.updated_at else 1
            plan.update(messages=messages, sweeps=sweeps)
            if sweeps > MAX_SWEEPS and now - state.updated_at >= GIVE_UP_AFTER:
                plan["give_up"] = True
                raise _NothingToWrite  # given up below, one step at a time, by the usual failure path
            state.swept_at, state.sweeps, state.sweep_mark = now, sweeps, state.updated_at

        with contextlib.suppress(_NothingToWrite):
            self.store.update_state(handoff_id, decide)
        if not plan:
            return
        if plan.get("give_up"):
            reason = f"no progress after {MAX_SWEEPS} re-queues by the sweeper"
            for message in plan["messages"]:
                self.queue.send_poison({**message, "reason": reason})
                self._fail(handoff_id, message, reason, "sweeper")
            report.gave_up += 1
            log.error("sweeper: gave up on handoff %s: %s", handoff_id, reason)
            return
        for message in plan["messages"]:
            self.queue.send(message)
            self.store.append_audit(
                handoff_id,
                "redeliveryScheduled",
                SYSTEM.describe(),
                {"op": message["op"], **({"seq": message["seq"]} if "seq" in message else {}),
                 "reason": "no activity", "sweep": plan["sweeps"]},
            )  # fmt: skip
            report.requeued += 1


@dataclass
class SweepReport:
    """What one sweep did: messages re-queued, handoffs given up, handoffs that raised."""

    requeued: int = 0
    gave_up: int = 0
    errors: int = 0


class _NothingToWrite(Exception):
    """Raised by a state mutation to leave the state unwritten (``update_state`` writes only when the
    mutation returns)."""


def create_attempt(now: datetime) -> Callable[[HandoffState], None]:
    """The state change made just before a thread is created (or an A2A message sent): the flag a retry
    looks at, the time of the first attempt (how far back it looks), and the attempt count."""

    def mark(state: HandoffState) -> None:
        state.create_attempted = True
        state.create_attempted_at = state.create_attempted_at or now
        state.attempts += 1

    return mark


def _message_id(message: dict[str, Any]) -> str | None:
    """The id of a message an agent listed (for the audit), when it has a printable one."""
    value = message.get("id")
    return value[:200] if isinstance(value, str) and value.isprintable() else None


def _redacted(model: ModelT, fields: tuple[str, ...]) -> tuple[ModelT, dict[str, int]]:
    """:func:`redact_model`, with a value that cannot be kept valid once its secret is cut out refused as
    422 naming the field (never a 500)."""
    try:
        return redact_model(model, fields)
    except ValidationError as exc:
        errors = [
            FieldError(field=e.field, message="holds what looks like a secret; remove it")
            for e in field_errors(exc)
        ]
        raise Unprocessable("; ".join(f"{e.field}: {e.message}" for e in errors[:5]), errors=errors) from None


def idempotent_id(secret: bytes, source: str, key: str) -> str:
    """The handoff id for (source agent, Idempotency-Key) under the broker's secret: HMAC-SHA256, shaped as
    a version-4 UUID."""
    digest = hmac.new(secret, f"{source.lower()}\n{key}".encode(), hashlib.sha256).digest()
    return str(uuid.UUID(bytes=digest[:16], version=4))


def _audit_position(token: str | None) -> int:
    """The sequence number a continuation token of the audit continues after (400 when it is not one)."""
    if token is None:
        return 0
    if not re.fullmatch(r"[0-9]{1,10}", token):
        raise single_field(BadRequest, "continuationToken", "not a token this API issued")
    return int(token)


def _plausible_id(handoff_id: str) -> bool:
    try:
        uuid.UUID(handoff_id)
    except ValueError:
        return False
    return True
