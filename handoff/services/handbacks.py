"""Taking a hand-back: the target agent's findings, recorded and queued for delivery into the source
thread (from REST and MCP, from an A2A task's result, or from the automatic hand-back watch)."""

from __future__ import annotations

from typing import Any

from handoff.domain.audit_events import EventType
from handoff.domain.auth import Caller
from handoff.domain.errors import Conflict, FieldError, Forbidden
from handoff.domain.ids import canonical_hash, check_idempotency_key, handback_claim
from handoff.domain.intake import parse_body, redacted
from handoff.domain.models import HandbackRequest, HandoffView
from handoff.domain.records import HandoffRecord, NewEvent, StoredHandback
from handoff.domain.redaction import HANDBACK_TEXT_FIELDS
from handoff.domain.work import HandBack
from handoff.services.context import ServiceContext
from handoff.services.intake import enqueue, registered_agent
from handoff.services.queries import Queries


class HandBacks:
    """Recording hand-backs."""

    def __init__(self, ctx: ServiceContext, queries: Queries) -> None:
        self.ctx = ctx
        self.queries = queries

    def hand_back(
        self, handoff_id: str, body: bytes, caller: Caller, idempotency_key: str | None = None
    ) -> tuple[HandoffView, bool]:
        """Record B's findings and queue their delivery into A's thread. Returns the handoff and whether
        the hand-back is new (an ``Idempotency-Key`` replay with the same body is not; with another
        body it is refused with 409)."""
        record = self.queries.readable_record(handoff_id, caller, "hand back on")
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
        authorizer = self.ctx.authorizer
        agent = registered_agent(self.ctx.registry, request.agent, "/agent")
        if agent.name != record.stored.target_agent:
            raise authorizer.refuse(
                caller,
                "hand back on",
                record.id,
                Forbidden(
                    f"only the handoff's target agent '{record.stored.target_agent}' may hand back, "
                    f"not '{agent.name}'",
                    errors=[FieldError(field="/agent", message="not the target of this handoff")],
                ),
            )
        authorizer.act_as(caller, agent, "hand back as")
        if record.state.status not in ("delivered", "handedBack"):
            raise Conflict(
                f"handoff {record.id} is '{record.state.status}': a hand-back is accepted only after delivery"
            )
        request, redactions = redacted(request, HANDBACK_TEXT_FIELDS)  # the hash is of what is stored
        claim = body_hash = None
        if idempotency_key is not None:
            claim = handback_claim(agent.name, check_idempotency_key(idempotency_key))
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
        # Answer from what was just written (a replay wrote nothing: read what is stored).
        return self.queries.view(self.ctx.get_record(record.id, fresh=not created)), created

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
        ctx = self.ctx
        if redactions is None:
            request, redactions = redacted(request, HANDBACK_TEXT_FIELDS)
        now = ctx.clock()

        def received(handback: StoredHandback) -> list[NewEvent]:
            details: dict[str, Any] = {"seq": handback.seq, "agent": agent, "outcome": request.outcome}
            if automatic:
                details["automatic"] = True
            if redactions:
                details["redactions"] = redactions
            return [NewEvent(EventType.HAND_BACK_RECEIVED, actor, details)]

        # The hand-back, its pending delivery and its audit event are one write: a replay finds all or
        # nothing of it, and what it can miss is only the enqueue below, which the sweeper makes up for.
        handback, created = ctx.store.add_handback(
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
            received,
        )
        if created:
            enqueue(ctx.queue, HandBack(handoff_id=handoff_id, seq=handback.seq))
        return handback, created
