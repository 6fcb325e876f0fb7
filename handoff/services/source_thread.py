"""What the broker posts into the source agent's (A's) thread: the cross-link to the target's thread, the
hand-backs, and notices about the target's progress. Each post is made at most once (marker check)."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from handoff.domain.audit_events import Actor, EventType
from handoff.domain.messages import MessageContext, crosslink_message, handback_message, marker
from handoff.domain.models import HandbackRequest
from handoff.domain.records import AgentCallError, HandoffRecord, HandoffState, NewEvent
from handoff.services.alongside import alongside
from handoff.services.context import ServiceContext
from handoff.services.handbacks import HandBacks
from handoff.services.lifecycle import index_handback, notify
from handoff.services.policy import Posted, look_back_since, post_once
from handoff.services.state_writes import touch

log = logging.getLogger("handoff")


class SourceThread:
    """Posts into the source thread."""

    def __init__(self, ctx: ServiceContext, handbacks: HandBacks) -> None:
        self.ctx = ctx
        self.handbacks = handbacks

    def crosslink(self, record: HandoffRecord, message_ctx: MessageContext, *, release: bool = False) -> None:
        """Post the link to the target's thread (or A2A task) into A's thread, once. With ``release``,
        the write that records it is the worker's last of its step and lets go of its lease."""
        ctx = self.ctx
        state = record.state
        if state.crosslink != "pending":
            return
        if not record.stored.request.source.thread_id:
            touch(ctx, record.id, lambda s: setattr(s, "crosslink", "noSourceThread"), release=release)
            return
        posted = self.post_crosslink(record, message_ctx, look=state.crosslink_attempted, mark=True)
        mutate, event = self.crosslinked(record, message_ctx, posted)
        touch(ctx, record.id, mutate, [event], release=release)

    def post_crosslink(
        self, record: HandoffRecord, message_ctx: MessageContext, *, look: bool, mark: bool
    ) -> Posted:
        """Post the cross-link unless ``look`` finds it posted (by an earlier attempt, back to a little
        before the first one); with ``mark``, record the attempt just before posting (else the caller
        has recorded it)."""
        ctx = self.ctx
        source_thread = record.stored.request.source.thread_id or ""
        now = ctx.clock()

        def attempt(s: HandoffState) -> None:
            s.crosslink_attempted = True
            s.crosslink_attempted_at = s.crosslink_attempted_at or now

        return post_once(
            ctx.agents,
            ctx.registry.by_name(record.stored.source_agent),
            source_thread,
            marker(record.id, "crosslink"),
            crosslink_message(record, message_ctx),
            look=look,
            since=look_back_since(ctx.settings, record.state.crosslink_attempted_at),
            before_post=(lambda: touch(ctx, record.id, attempt)) if mark else None,
        )

    @staticmethod
    def crosslinked(
        record: HandoffRecord, message_ctx: MessageContext, posted: Posted
    ) -> tuple[Callable[[HandoffState], None], NewEvent]:
        """The state change and the audit event that record a posted cross-link."""

        def done(s: HandoffState) -> None:
            s.crosslink = "posted"
            s.crosslink_message_id = posted.message_id

        details: dict[str, Any] = {
            "sourceThreadId": record.stored.request.source.thread_id,
            "targetThreadUrl": message_ctx.target_thread_url,
        }
        if posted.message_id:
            details["messageId"] = posted.message_id
        if posted.recovered:
            details["recovered"] = True  # posted by an earlier attempt whose answer was lost
        return done, NewEvent(EventType.CROSS_LINKED, Actor.BROKER, details)

    def deliver_handback(self, record: HandoffRecord, seq: int, *, release: bool = False) -> None:
        """Post hand-back ``seq`` into A's thread, once (or keep it as ``noSourceThread``). With
        ``release``, the write that records it is the worker's last of its step and lets go of its
        lease."""
        ctx = self.ctx
        handback = next((hb for hb in record.handbacks if hb.seq == seq), None)
        delivery = record.state.handbacks.get(seq)
        if handback is None or delivery is None or delivery.status != "pending":
            return
        # The findings are history as soon as they are recorded, whether or not A's thread takes them.
        # Indexing never raises; it is done before the write that ends the step, so a retry after a
        # crash anywhere before that write (the hand-back still pending) indexes it again.
        source_thread = record.stored.request.source.thread_id
        now = ctx.clock()
        if not source_thread:
            index_handback(ctx, record, seq)

            def no_thread(s: HandoffState) -> None:
                s.handbacks[seq].status = "noSourceThread"
                s.status = "handedBack"
                s.handed_back_at = now

            event = NewEvent(EventType.HANDED_BACK, Actor.BROKER, {"seq": seq, "posted": False})
            touch(ctx, record.id, no_thread, [event], release=release)
            notify(ctx, record.id, "handedBack", {"seq": seq})
            return

        def attempt(s: HandoffState) -> None:
            s.handbacks[seq].attempted = True
            s.handbacks[seq].attempted_at = s.handbacks[seq].attempted_at or now

        # Indexed while it is posted: independent requests, so the step waits for the longer of the two,
        # not for both.
        posted = alongside(
            lambda: index_handback(ctx, record, seq),
            lambda: post_once(
                ctx.agents,
                ctx.registry.by_name(record.stored.source_agent),
                source_thread,
                marker(record.id, f"handback:{seq}"),
                handback_message(record, handback, ctx.message_context(record)),
                look=delivery.attempted,
                since=look_back_since(ctx.settings, delivery.attempted_at),
                before_post=lambda: touch(ctx, record.id, attempt),
            ),
        )

        def done(s: HandoffState) -> None:
            s.handbacks[seq].status = "posted"
            s.handbacks[seq].posted_at = now
            s.handbacks[seq].message_id = posted.message_id
            s.status = "handedBack"
            s.handed_back_at = now

        details: dict[str, Any] = {"seq": seq, "sourceThreadId": source_thread}
        if posted.message_id:
            details["messageId"] = posted.message_id
        if posted.recovered:
            details["recovered"] = True
        touch(ctx, record.id, done, [NewEvent(EventType.HANDED_BACK, Actor.BROKER, details)], release=release)
        notify(ctx, record.id, "handedBack", {"seq": seq})

    def hand_back_now(
        self, handoff_id: str, request: HandbackRequest, agent: str, actor: str, *, automatic: bool = False
    ) -> None:
        """Record a hand-back and post it into A's thread now: this worker holds the handoff's lease,
        so the queued hand-back message would only wait for it. If posting fails, that queued message
        retries it the usual way."""
        handback, _created = self.handbacks.record_handback(
            handoff_id, request, agent, actor, automatic=automatic
        )
        try:
            self.deliver_handback(self.ctx.get_record(handoff_id, fresh=False), handback.seq)
        except AgentCallError as exc:
            log.info("hand-back %s of %s left to the queue: %s", handback.seq, handoff_id, exc.reason)

    def post_notice(self, record: HandoffRecord, step: str, text: str) -> None:
        """Post ``text`` into A's thread unless a message with its marker is there (nothing when A has no
        thread the broker can post into)."""
        source_thread = record.stored.request.source.thread_id
        source = self.ctx.registry.find(record.stored.source_agent)
        if source_thread and source is not None and not source.is_a2a:
            post_once(self.ctx.agents, source, source_thread, marker(record.id, step), text)
