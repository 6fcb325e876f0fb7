"""The delivery queue's worker: each message parsed into its kind of work and run by the one handler
registered for that kind.

The handoff's own steps (``deliver``, ``handback``) and follow-ups (``a2aPoll``, ``watch``) run while the
worker holds the handoff's lease, so two workers never work one handoff at once; their agent failures go
through the one retry-or-give-up rule. Other kinds (alert notes, human entries) are registered by the
composition root. A message that is not work of a registered kind is parked on the poison queue with
the reason, never dropped.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

from handoff.domain.audit_events import Actor, EventType
from handoff.domain.ids import is_uuid
from handoff.domain.records import AgentCallError, HandoffRecord
from handoff.domain.redaction import redact
from handoff.domain.registry import AgentConfig
from handoff.domain.work import (
    A2APoll,
    Deliver,
    FollowUp,
    HandBack,
    MalformedWork,
    Watch,
    Work,
    WorkMessage,
    follow_up_delay,
    op_of,
    parse_work,
)
from handoff.ports import LeaseBusy, LeaseLost, StateChanged, StorageUnavailable
from handoff.services.a2a_followup import A2AFollowUp
from handoff.services.context import ServiceContext
from handoff.services.delivery import Delivery
from handoff.services.listing import keep_indexed
from handoff.services.policy import retry_or_give_up
from handoff.services.source_thread import SourceThread
from handoff.services.state_writes import (
    Lease,
    acquire_lease,
    fail_step,
    hold,
    release_lease,
    taking,
)
from handoff.services.thread_watch import ThreadWatch

log = logging.getLogger("handoff")

WorkT = TypeVar("WorkT", bound=Work)
WorkHandler = Callable[[WorkMessage, int], None]
"""Runs one message (with how often the queue has handed it out); raises for the host to retry."""
# A handoff step that meets another worker holding the lease comes back after this long.
BUSY_DELAY_SECONDS = 15.0
# A step whose handoff keeps changing under it (each time after it read it, before its first write) is
# started again at most this often, then left to the queue's retry.
MAX_STEP_STARTS = 5


class Worker:
    """Runs delivery-queue messages."""

    def __init__(
        self,
        ctx: ServiceContext,
        delivery: Delivery,
        source_thread: SourceThread,
        a2a: A2AFollowUp,
        watch: ThreadWatch,
    ) -> None:
        self.ctx = ctx
        self.delivery = delivery
        self.source_thread = source_thread
        self.a2a = a2a
        self.watch = watch
        self.handlers: dict[str, WorkHandler] = {}
        self.register(Deliver, self._deliver)
        self.register(HandBack, self._hand_back)
        self.register(A2APoll, self._follow_up)
        self.register(Watch, self._follow_up)

    def register(self, kind: type[WorkT], handler: Callable[[WorkT, int], None]) -> None:
        """Run messages of ``kind`` with ``handler`` (one handler per kind)."""

        def run(message: WorkMessage, dequeue_count: int) -> None:
            if not isinstance(message, kind):
                raise TypeError(f"{type(message).__name__} is not {kind.__name__}")
            handler(message, dequeue_count)

        self.handlers[op_of(kind)] = run

    # ------------------------------------------------------------------ dispatch

    def process(self, raw: Mapping[str, Any], dequeue_count: int = 1) -> None:
        """Run one delivery-queue message. Transient failures reschedule through the queue.

        Whatever else raises is re-raised for the host to retry; on the last dequeue (after which the
        host poisons the message) the step is marked failed first, with the exception's type as the
        reason, so no handoff is left waiting on a message that is gone.
        """
        try:
            message = parse_work(dict(raw))
        except MalformedWork as malformed:
            self.reject(raw, malformed.reason)
            return
        handler = self.handlers.get(message.op)
        if handler is None:
            self.reject(raw, f"no handler for op {message.op!r} in this worker")
            return
        try:
            handler(message, dequeue_count)
        except Exception as exc:
            if dequeue_count >= self.ctx.settings.max_dequeue_count:
                self._fail_poisoned(message, exc)
            raise

    def reject(self, raw: Mapping[str, Any], reason: str) -> None:
        """Park a message the worker cannot run on the poison queue with ``reason``, and note it in the
        audit of its handoff when it names one that exists (its step is left to the sweeper)."""
        log.error("delivery message refused: %s; moving it to the poison queue", reason)
        self.ctx.queue.send_poison({**raw, "reason": reason[:500]})
        handoff_id = raw.get("handoffId")
        if not isinstance(handoff_id, str) or not is_uuid(handoff_id):
            return
        try:
            if self.ctx.store.get(handoff_id) is None:
                return
            op = redact(str(raw.get("op"))[:100])
            details = {"op": op, "reason": redact(reason[:500])}
            self.ctx.store.append_audit(handoff_id, EventType.WORK_REJECTED, Actor.BROKER, details)
        except Exception:
            log.exception("could not audit the refused message of %s", handoff_id)

    def _fail_poisoned(self, message: WorkMessage, exc: Exception) -> None:
        """The host poisons ``message`` after this failure: mark its step failed now, reading nothing
        but the state entity (the rest of the record may be what cannot be read). Follow-up polls and
        other kinds of work leave the handoff as it is; their own audit says why they stopped."""
        if not isinstance(message, Deliver | HandBack):
            log.error("poisoned message for no handoff step (%s): %s", type(exc).__name__, message.wire())
            return
        try:
            fail_step(self.ctx, message, f"unexpected error: {type(exc).__name__}", "poisoned")
        except Exception:
            log.exception(
                "could not mark %s failed before its message %s is poisoned",
                message.handoff_id,
                message.wire(),
            )

    # ------------------------------------------------------------------ the handoff's own work

    def _deliver(self, message: Deliver, _dequeue_count: int) -> None:
        def calls_first(record: HandoffRecord) -> bool:
            # An A2A delivery calls the peer (to find the task an earlier attempt started) and audits
            # what it finds before its first state write: it takes the lease first.
            target = self.ctx.registry.find(record.stored.target_agent)
            return target is not None and target.is_a2a

        self._leased(
            message, self.delivery.deliver, self.delivery.after_failure, BUSY_DELAY_SECONDS, calls_first
        )

    def _hand_back(self, message: HandBack, _dequeue_count: int) -> None:
        self._leased(
            message,
            lambda record: self.source_thread.deliver_handback(record, message.seq, release=True),
            self.delivery.after_failure,
            BUSY_DELAY_SECONDS,
        )

    def _follow_up(self, message: FollowUp, _dequeue_count: int) -> None:
        # Follow-up polls often meet the delivery that scheduled them still holding the lease (and one
        # a push notification brought may meet a scheduled one): come back as soon as a first poll would.
        busy = max(1.0, follow_up_delay(0.0, self.ctx.settings.poll_interval_seconds))
        self._leased(
            message,
            lambda record: self._run_follow_up(record, message),
            self._follow_up_failed,
            busy,
            lambda _record: True,
        )

    def _run_follow_up(self, record: HandoffRecord, message: FollowUp) -> None:
        target: AgentConfig | None = self.ctx.registry.find(record.stored.target_agent)
        if target is None:
            log.warning("dropping %s for %s: target no longer registered", message.op, record.id)
            return
        if isinstance(message, A2APoll):
            self.a2a.poll(record, target, message)
        else:
            self.watch.watch(record, target)

    def _follow_up_failed(self, message: FollowUp, exc: AgentCallError) -> None:
        """Retry a failed poll with back-off; give up after the configured attempts (a follow-up is not
        worth replaying, so it is not parked)."""
        give_up = self.a2a.give_up if isinstance(message, A2APoll) else self.watch.give_up
        retry_or_give_up(
            self.ctx, message, exc, poison=False, give_up=lambda reason: give_up(message.handoff_id, reason)
        )

    def _leased(
        self,
        message: WorkT,
        step: Callable[[HandoffRecord], None],
        failed: Callable[[WorkT, AgentCallError], None],
        busy_delay: float,
        lease_first: Callable[[HandoffRecord], bool] | None = None,
    ) -> None:
        """Run ``step`` on the handoff while holding its lease; an agent failure goes to ``failed``.

        The step starts from the handoff as this process last read or wrote it. Unless ``lease_first``
        says the step calls someone before its first state write, that write takes the lease on the
        version the step started from (see :func:`taking`): when the state changed since, or the lease
        looked busy on that version, the step starts again from the stored handoff; a step that wrote
        nothing is confirmed on the stored handoff the same way."""
        ctx = self.ctx
        handoff_id = message.handoff_id
        record = ctx.store.get(handoff_id, fresh=False)
        fresh = False
        for _ in range(MAX_STEP_STARTS):
            if record is None:
                log.warning("dropping delivery message for unknown handoff: %s", message.wire())
                return
            if lease_first is not None and lease_first(record):
                self._lease_first(message, step, failed, busy_delay)
                return
            lease_until = record.state.lease_until
            if lease_until is not None and lease_until > ctx.clock():
                # Another worker holds the handoff: come back later, calling nobody (if it still does).
                if fresh:
                    ctx.queue.send(message.wire(), busy_delay)
                    return
                record, fresh = ctx.store.get(handoff_id), True
                continue
            try:
                written = self._step_taking_lease(record, message, step, failed)
            except (StateChanged, LeaseBusy) as exc:
                if isinstance(exc, LeaseBusy) and fresh:
                    ctx.queue.send(message.wire(), busy_delay)
                    return
                record, fresh = ctx.store.get(handoff_id), True
                continue
            if written:
                return
            latest = record if fresh else ctx.store.get(handoff_id)
            if latest is None:
                return
            if fresh or latest.version == record.version:
                if isinstance(message, Deliver | HandBack):
                    # The step was done already (a retry after a crash, a message delivered twice): its
                    # index entry may be what the crash left unwritten.
                    keep_indexed(ctx, latest)
                return
            record, fresh = latest, True
        raise StorageUnavailable(f"handoff {handoff_id} kept changing while a step started")

    def _step_taking_lease(
        self,
        record: HandoffRecord,
        message: WorkT,
        step: Callable[[HandoffRecord], None],
        failed: Callable[[WorkT, AgentCallError], None],
    ) -> bool:
        """Run ``step`` whose first state write takes the lease; whether it wrote anything."""
        ctx = self.ctx
        with taking(record.id, record.version) as lease:
            try:
                try:
                    step(record)
                except AgentCallError as exc:
                    failed(message, exc)
            except LeaseLost:
                # Another worker has the handoff now (this one was stalled past its lease): it carries
                # on, and this message is done. Nothing was called after the write that found out.
                log.warning("lease on %s lost to another worker; %s left to it", record.id, message.wire())
            finally:
                if lease.taken and not lease.released:
                    release_lease(ctx, record.id, lease.token)
        return lease.taken

    def _lease_first(
        self,
        message: WorkT,
        step: Callable[[HandoffRecord], None],
        failed: Callable[[WorkT, AgentCallError], None],
        busy_delay: float,
    ) -> None:
        """Take the lease, then run ``step`` on the handoff as the lease's write left it."""
        ctx = self.ctx
        handoff_id = message.handoff_id
        try:
            token = acquire_lease(ctx, handoff_id)
        except LeaseBusy:
            ctx.queue.send(message.wire(), busy_delay)
            return
        lease = Lease(handoff_id, token)
        try:
            with hold(lease):
                record = ctx.get_record(handoff_id, fresh=False)
                try:
                    step(record)
                except AgentCallError as exc:
                    failed(message, exc)
        except LeaseLost:
            # Another worker has the handoff now (this one was stalled past its lease): it carries on,
            # and this message is done. Nothing was called after the write that found out.
            log.warning("lease on %s lost to another worker; %s left to it", handoff_id, message.wire())
        finally:
            if not lease.released:
                release_lease(ctx, handoff_id, token)
