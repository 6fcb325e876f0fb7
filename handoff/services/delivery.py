"""Delivering a handoff: a new thread on the target SRE Agent (or its HTTP trigger fired, or an A2A
message sent), the links between the two threads, the cross-link into the source thread and the start of
the automatic hand-back watch. A retry looks for what an earlier attempt created before creating it."""

from __future__ import annotations

import logging
from collections.abc import Callable
from contextlib import suppress
from dataclasses import replace
from datetime import datetime
from typing import Any

from handoff.domain.audit_events import Actor, EventType
from handoff.domain.messages import start_message, thread_url, trigger_payload
from handoff.domain.records import (
    AgentCallError,
    HandoffRecord,
    HandoffState,
    LinkRecord,
    NewEvent,
    StepStatus,
)
from handoff.domain.registry import SYSTEM_SOURCES, AgentConfig, HttpTriggerDelivery
from handoff.domain.work import HandoffStep
from handoff.services.a2a_followup import A2AFollowUp
from handoff.services.alongside import alongside
from handoff.services.context import ServiceContext
from handoff.services.lifecycle import notify
from handoff.services.policy import look_back_since, retry_or_give_up
from handoff.services.source_thread import SourceThread
from handoff.services.state_writes import create_attempt, fail_step, touch
from handoff.services.thread_watch import ThreadWatch, auto_settings

log = logging.getLogger("handoff")

SEEN_BEFORE_LIMIT = 3


class Delivery:
    """The ``deliver`` and ``handback`` steps."""

    def __init__(
        self, ctx: ServiceContext, source_thread: SourceThread, a2a: A2AFollowUp, watch: ThreadWatch
    ) -> None:
        self.ctx = ctx
        self.source_thread = source_thread
        self.a2a = a2a
        self.watch = watch

    def deliver(self, record: HandoffRecord) -> None:
        """Deliver the handoff to its target, then cross-link it (each part once, whatever was done)."""
        ctx = self.ctx
        state = record.state
        if state.status == "failed":
            return
        target = ctx.registry.by_name(record.stored.target_agent)
        if target.is_a2a:
            self.a2a.deliver(record, target)
            return
        if not state.target_thread_id and state.status == "accepted":
            self._open_thread(record, target)
            return
        self.source_thread.crosslink(record, ctx.message_context(record), release=True)

    def after_failure(self, step: HandoffStep, exc: AgentCallError) -> None:
        """Retry a failed step after a back-off (the sweeper leaves the handoff alone until then), or give
        up: the message is parked and the step marked failed."""
        ctx = self.ctx

        def scheduled(due: datetime) -> None:
            def note(s: HandoffState) -> None:
                s.last_error = exc.reason
                s.retry_at = due

            touch(ctx, step.handoff_id, note)

        retry_or_give_up(
            ctx, step, exc, on_retry=scheduled, give_up=lambda reason: fail_step(ctx, step, reason, "failed")
        )

    def _open_thread(self, record: HandoffRecord, target: AgentConfig) -> None:
        """The target's thread for the handoff (found, or created now), its links, and the cross-link
        into the source thread, recorded in one write with their audit events.

        The write before the thread is created takes the lease and marks both calls as attempted (the
        cross-link's too), so a retry after a crash anywhere looks for the thread and for the cross-link
        by their markers before it makes either again."""
        thread_id, events = self._thread(record, target)
        url = thread_url(target.resource_id, thread_id)
        events.append(NewEvent(EventType.DELIVERED, Actor.BROKER, {"threadId": thread_id, "threadUrl": url}))
        state = record.state.model_copy(update={"target_thread_id": thread_id})
        delivered = record.model_copy(update={"state": state})
        release = auto_settings(record, target) is None or not thread_id  # no watch writes after
        if not record.stored.request.source.thread_id:
            self._delivered(delivered, target, events, "noSourceThread", release=release)
            return
        message_ctx = self.ctx.message_context(delivered)
        # The links are written while the cross-link is posted (independent requests), and both are done
        # before the write that records the delivery: a crash before it leaves the step to a retry that
        # writes them again (idempotent upserts); none after it could. Links the side could not write are
        # written once more here, where their error fails the step.
        linked: list[bool] = []

        def store_links() -> None:
            with suppress(Exception):
                self._store_links(record, thread_id)
                linked.append(True)

        refused: AgentCallError | None = None
        try:
            posted = alongside(
                store_links,
                lambda: self.source_thread.post_crosslink(
                    delivered, message_ctx, look=record.state.crosslink_attempted, mark=False
                ),
            )
        except AgentCallError as exc:
            refused = exc
        if not linked:
            self._store_links(record, thread_id)
        if refused is not None:
            self._delivered(delivered, target, events, None, release=False)  # the cross-link fails alone
            raise refused
        mark_posted, crosslinked = self.source_thread.crosslinked(delivered, message_ctx, posted)
        self._delivered(delivered, target, [*events, crosslinked], mark_posted, release=release)

    def _thread(self, record: HandoffRecord, target: AgentConfig) -> tuple[str | None, list[NewEvent]]:
        """The handoff's thread on the target: the one an earlier attempt opened, found by its marker
        (``deliveryRecovered``), or one opened now (after the write that takes the lease and marks the
        attempt, with ``deliveryAttempt``)."""
        ctx = self.ctx
        stored, state = record.stored, record.state
        now = ctx.clock()
        has_source_thread = bool(stored.request.source.thread_id)
        if state.create_attempted:
            # An earlier attempt may have created the thread before failing: look before creating.
            since = look_back_since(ctx.settings, state.create_attempted_at)
            found = ctx.agents.find_thread(target, stored.id, since)
            if found:
                if has_source_thread:
                    # The cross-link is next: take the lease (and mark the attempt) before posting it.
                    touch(ctx, stored.id, _attempting(now, crosslink=True, create=False))
                return found, [NewEvent(EventType.DELIVERY_RECOVERED, Actor.BROKER, {"threadId": found})]
        touch(ctx, stored.id, _attempting(now, crosslink=has_source_thread), _attempt_event(target))
        message_ctx = replace(ctx.message_context(record), seen_before=self._seen_before(record))
        if isinstance(target.delivery, HttpTriggerDelivery):
            return ctx.agents.fire_trigger(target, trigger_payload(record, message_ctx)), []
        return ctx.agents.create_thread(target, start_message(record, message_ctx)), []

    def _delivered(
        self,
        record: HandoffRecord,
        target: AgentConfig,
        events: list[NewEvent],
        crosslink: Callable[[HandoffState], None] | StepStatus | None,
        *,
        release: bool,
    ) -> None:
        """Record the delivery (and what became of the cross-link) with ``events``, then tell the
        lifecycle listener and start watching the thread when automatic hand-back is on."""
        ctx = self.ctx
        thread_id = record.state.target_thread_id
        now = ctx.clock()

        def delivered(s: HandoffState) -> None:
            s.status = "delivered"
            s.target_thread_id = thread_id
            s.delivered_at = now
            s.last_error = None
            if callable(crosslink):
                crosslink(s)
            elif crosslink is not None:
                s.crosslink = crosslink

        touch(ctx, record.id, delivered, events, release=release)
        notify(ctx, record.id, "delivered", {"threadId": thread_id})
        self.watch.start(record, target, thread_id)

    def _store_links(self, record: HandoffRecord, target_thread_id: str | None) -> None:
        source_thread = record.stored.request.source.thread_id
        if not source_thread or not target_thread_id:
            return
        now = self.ctx.clock()
        a, b = record.stored.source_agent, record.stored.target_agent
        self.ctx.store.add_links([
            LinkRecord(agent=a, thread_id=source_thread, relation="handedOffTo", peer_agent=b,
                       peer_thread_id=target_thread_id, handoff_id=record.id, created_at=now),
            LinkRecord(agent=b, thread_id=target_thread_id, relation="receivedFrom", peer_agent=a,
                       peer_thread_id=source_thread, handoff_id=record.id, created_at=now),
        ])  # fmt: skip

    def _seen_before(self, record: HandoffRecord) -> tuple[dict[str, Any], ...]:
        """Earlier investigations of the handoff's resources for its start message (never its own chain)."""
        resources = list(record.stored.request.context.resources)
        if self.ctx.history is None or not resources:
            return ()
        try:
            # Only what the two agents of this handoff could read in the history themselves. A system
            # source (an alert) is no agent: its history is every team's alert investigations.
            agents = (
                frozenset({record.stored.source_agent, record.stored.target_agent}) - SYSTEM_SOURCES.keys()
            )
            found = self.ctx.history.recent_for_resources(
                resources, record.stored.root_id, SEEN_BEFORE_LIMIT, agents
            )
        except Exception:
            log.exception("could not read the history for %s", record.id)
            return ()
        return tuple(found)


def _attempting(now: datetime, *, crosslink: bool, create: bool = True) -> Callable[[HandoffState], None]:
    """The state change before the thread is created (:func:`create_attempt`) and, with ``crosslink``,
    before the cross-link is posted: the flags a retry looks at and when they were first set."""
    mark_create = create_attempt(now)

    def mark(state: HandoffState) -> None:
        if create:
            mark_create(state)
        if crosslink and state.crosslink == "pending":
            state.crosslink_attempted = True
            state.crosslink_attempted_at = state.crosslink_attempted_at or now

    return mark


def _attempt_event(target: AgentConfig) -> Callable[[HandoffState], list[NewEvent]]:
    """The ``deliveryAttempt`` event of the attempt the state now counts."""
    mode = target.delivery.mode
    return lambda state: [
        NewEvent(EventType.DELIVERY_ATTEMPT, Actor.BROKER, {"attempt": state.attempts, "mode": mode})
    ]
