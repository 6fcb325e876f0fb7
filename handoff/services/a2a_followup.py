"""Handoffs to A2A agents: the handoff sent as an A2A ``SendMessage``, then the task it started followed
to its end (``a2aPoll`` messages that reschedule themselves, so no function ever sleeps). A completed task
becomes a hand-back; a task that needs input, fails, is rejected or canceled ends the handoff so.

A partner whose card declares push notifications is asked to push the task's updates
(:mod:`handoff.services.a2a_push`): the one that ends the task brings a poll at once, and scheduled polls
are only a safety net at the poll interval. Other partners are polled adaptively
(:func:`handoff.domain.work.follow_up_delay`): a second after delivery, then further apart.
"""

from __future__ import annotations

import dataclasses
import logging
import uuid
from datetime import timedelta

from pydantic import ValidationError

from handoff.domain.audit_events import Actor, EventType
from handoff.domain.messages import a2a_contract_request, a2a_payload, remote_status_message, start_message
from handoff.domain.models import HandbackRequest, HandoffStatus
from handoff.domain.records import AgentCallError, HandoffRecord, HandoffState, RemoteTask
from handoff.domain.redaction import redact
from handoff.domain.registry import AgentConfig
from handoff.domain.work import A2APoll, follow_up_delay
from handoff.ports import RemoteAgentGateway
from handoff.services.a2a_push import PUSH_SECRET, push_token, push_url
from handoff.services.context import ServiceContext
from handoff.services.source_thread import SourceThread
from handoff.services.state_writes import create_attempt, touch

log = logging.getLogger("handoff")

MESSAGE_ID_NAMESPACE = uuid.UUID("0b7e4f8e-7a53-4a43-9d0e-4c1f5a2f9b61")
# A2A task states that end polling, and the handoff status each becomes (COMPLETED becomes a hand-back).
A2A_END_STATES: dict[str, HandoffStatus] = {
    "INPUT_REQUIRED": "inputRequired",
    "FAILED": "failed",
    "REJECTED": "rejected",
    "CANCELED": "canceled",
}
A2A_AUDIT_TYPES: dict[str, EventType] = {
    "inputRequired": EventType.REMOTE_INPUT_REQUIRED,
    "failed": EventType.REMOTE_FAILED,
    "rejected": EventType.REMOTE_REJECTED,
    "canceled": EventType.REMOTE_CANCELED,
}
MAX_SUMMARY = 65536
HANDBACK_FIELDS = ("outcome", "summary", "rootCause", "recommendedActions", "evidence")
# A contract hand-back may also name the contract it follows.
CONTRACT_FIELDS = (*HANDBACK_FIELDS, "schemaId", "schemaVersion")


def a2a_message_id(handoff_id: str) -> str:
    """The A2A ``message_id`` of a handoff's ``SendMessage``: stable, so a retry can be recognised."""
    return str(uuid.uuid5(MESSAGE_ID_NAMESPACE, f"handoff:{handoff_id}"))


def handback_from_task(task: RemoteTask, agent: str) -> HandbackRequest:
    """Turn a completed A2A task into a hand-back.

    A ``data`` part tagged with the contract's A2A extension as a ``handback-request`` is read first, as
    the contract's document (its ``agent`` and ``threadId`` are the target's own, whatever it says); then
    the first artifact ``data`` part that is a valid hand-back; otherwise the artifacts' text is handed
    back with outcome ``reported``.
    """
    text = "\n\n".join(a.text for a in task.artifacts if a.text.strip()).strip()
    tagged = [(a.contract, CONTRACT_FIELDS) for a in task.artifacts if isinstance(a.contract, dict)]
    plain = [(a.data, HANDBACK_FIELDS) for a in task.artifacts if isinstance(a.data, dict)]
    for data, names in [*tagged, *plain]:
        if "outcome" not in data:
            continue
        fields = {key: data[key] for key in names if key in data}
        fields.setdefault("summary", text or task.status_text or "(no summary)")
        try:
            return HandbackRequest.model_validate({**fields, "agent": agent})
        except ValidationError:
            log.info("artifact data of A2A task %s is not a hand-back; handing back its text", task.task_id)
    summary = text or task.status_text or "(the task completed without a text result)"
    return HandbackRequest(agent=agent, outcome="reported", summary=summary[:MAX_SUMMARY])


class A2AFollowUp:
    """Delivery to A2A agents and the polling of their tasks."""

    def __init__(self, ctx: ServiceContext, source_thread: SourceThread) -> None:
        self.ctx = ctx
        self.source_thread = source_thread
        self._push_secret: bytes | None = None

    def deliver(self, record: HandoffRecord, target: AgentConfig) -> None:
        """Send the handoff as an A2A ``SendMessage``, record the task, cross-link, start polling."""
        ctx = self.ctx
        if record.state.status == "accepted":
            task, push = self._send(record, target)
            now = ctx.clock()

            def delivered(s: HandoffState) -> None:
                s.status = "delivered"
                s.remote_task_id = task.task_id
                s.remote_state = task.state
                s.delivered_at = now
                s.last_error = None

            touch(ctx, record.id, delivered)
            ctx.store.append_audit(
                record.id,
                EventType.DELIVERED,
                Actor.BROKER,
                {"taskId": task.task_id, "taskState": task.state},
            )
            if task.task_id.startswith("message:"):
                # The peer answered with a message and no task: that message is the result.
                self.source_thread.hand_back_now(
                    record.id, handback_from_task(task, target.name), target.name, f"a2a:{target.name}"
                )
            elif task.state == "COMPLETED" or task.state in A2A_END_STATES:
                self._schedule(A2APoll(handoff_id=record.id, push=push), 0)  # the first answer ends it
            else:
                self._schedule_next(A2APoll(handoff_id=record.id, push=push), 0.0)
            record = ctx.get_record(record.id)
        if record.state.remote_task_id:
            message_ctx = dataclasses.replace(
                ctx.message_context(record), target_thread_url=f"A2A task {record.state.remote_task_id}"
            )
            self.source_thread.crosslink(record, message_ctx)

    def _send(self, record: HandoffRecord, target: AgentConfig) -> tuple[RemoteTask, bool]:
        """The task of the handoff's ``SendMessage`` (one an earlier attempt started, or a new one), and
        whether the partner was asked to push the task's updates."""
        ctx = self.ctx
        stored = record.stored
        gateway = self._remote()
        message_id = a2a_message_id(stored.id)
        # Every attempt asks the same, so a task an earlier attempt started was asked to push too.
        push = gateway.supports_push(target)
        if record.state.create_attempted:
            # An earlier attempt may have reached the peer before failing: look before sending again.
            found = gateway.find_task(target, context_id=stored.root_id, message_id=message_id)
            if found is not None:
                ctx.store.append_audit(
                    stored.id, EventType.DELIVERY_RECOVERED, Actor.BROKER, {"taskId": found.task_id}
                )
                return found, push
        state = touch(ctx, stored.id, create_attempt(ctx.clock()))
        ctx.store.append_audit(
            stored.id, EventType.DELIVERY_ATTEMPT, Actor.BROKER, {"attempt": state.attempts, "mode": "a2a"}
        )
        message_ctx = ctx.message_context(record)
        task = gateway.send_message(
            target,
            message_id=message_id,
            context_id=stored.root_id,
            text=start_message(record, message_ctx),
            data=a2a_payload(record, message_ctx),
            contract=a2a_contract_request(record),
            push_url=push_url(ctx.settings, stored.id) if push else None,
            push_token=self.push_token(stored.id) if push else None,
        )
        return task, push

    def push_token(self, handoff_id: str) -> str:
        """The token the partner presents with the push notifications of this handoff's task."""
        if self._push_secret is None:
            self._push_secret = self.ctx.store.secret(PUSH_SECRET)
        return push_token(self._push_secret, handoff_id)

    def poll(self, record: HandoffRecord, target: AgentConfig, message: A2APoll | None = None) -> None:
        """One ``a2aPoll``: follow the task's state; hand back, end the handoff, or poll again later
        (unless the poll was brought by a push notification: the scheduled polls carry on)."""
        ctx = self.ctx
        state = record.state
        message = message or A2APoll(handoff_id=record.id)
        if state.status != "delivered" or not state.remote_task_id or record.handbacks:
            return  # closed, or not delivered over A2A: nothing to poll
        task = self._remote().get_task(target, state.remote_task_id)
        if task.state != state.remote_state:
            touch(ctx, record.id, lambda s: setattr(s, "remote_state", task.state))
            ctx.store.append_audit(
                record.id,
                EventType.REMOTE_TASK_STATE,
                Actor.BROKER,
                {"taskId": task.task_id, "state": task.state},
            )
        if task.state == "COMPLETED":
            request = handback_from_task(task, target.name)
            self.source_thread.hand_back_now(record.id, request, target.name, f"a2a:{target.name}")
            return
        status = A2A_END_STATES.get(task.state)
        if status is not None:
            self._end_remote(record, status, task.status_text)
            return
        if message.notified:
            return  # the notification ran ahead of the task's own state; the scheduled polls carry on
        started = state.delivered_at or state.updated_at
        limit = ctx.settings.a2a_max_poll_minutes
        elapsed = ctx.clock() - started
        if elapsed > timedelta(minutes=limit):
            self._end_remote(record, "failed", f"the A2A task did not finish within {limit:g} minutes")
            return
        self._schedule_next(A2APoll(handoff_id=record.id, push=message.push), elapsed.total_seconds())

    def give_up(self, handoff_id: str, reason: str) -> None:
        """The peer could not be polled (permanently, or after the last attempt): the handoff fails."""

        def lost(s: HandoffState) -> None:
            if s.status == "delivered":
                s.status = "failed"
            s.last_error = reason

        touch(self.ctx, handoff_id, lost)
        self.ctx.store.append_audit(
            handoff_id, EventType.REMOTE_FAILED, Actor.BROKER, {"reason": reason, "how": "unreachable"}
        )

    def _end_remote(self, record: HandoffRecord, status: HandoffStatus, detail: str) -> None:
        detail = redact(detail)  # the partner's status text is posted, stored and audited
        text = remote_status_message(record, self.ctx.message_context(record), status, detail)
        # Post first (idempotent through its marker), then change the status: a failed post is retried.
        self.source_thread.post_notice(record, f"remote:{status}", text)

        def ended(s: HandoffState) -> None:
            s.status = status
            s.last_error = detail or None

        touch(self.ctx, record.id, ended)
        self.ctx.store.append_audit(
            record.id,
            A2A_AUDIT_TYPES[status],
            Actor.BROKER,
            {"taskId": record.state.remote_task_id, "detail": detail},
        )

    def _remote(self) -> RemoteAgentGateway:
        gateway = self.ctx.remote_agents
        if gateway is None:
            raise AgentCallError("no A2A client is configured", transient=False)
        return gateway

    def _schedule_next(self, poll: A2APoll, elapsed_seconds: float) -> None:
        """The next poll: at the interval when the partner pushes (a safety net), else adaptively."""
        interval = self.ctx.settings.poll_interval_seconds
        self._schedule(poll, interval if poll.push else follow_up_delay(elapsed_seconds, interval))

    def _schedule(self, poll: A2APoll, delay: float) -> None:
        self.ctx.queue.send(poll.wire(), delay)
