"""Work that follows a delivery: A2A tasks polled to their end, and SRE Agent threads watched for an
automatic hand-back.

Both run as delivery-queue messages (``a2aPoll``, ``watch``) that reschedule themselves with a delay,
so no function ever sleeps; both stop once the handoff is closed (handed back, failed, rejected,
canceled) and after a bounded time. Like :mod:`handoff.services.handoffs`, this module imports no SDK: A2A
peers are reached through :class:`~handoff.domain.records.RemoteAgentGateway`, SRE Agents through
:class:`~handoff.domain.records.AgentGateway`.
"""

from __future__ import annotations

import dataclasses
import logging
import uuid
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from pydantic import ValidationError

from handoff.domain.messages import (
    a2a_payload,
    marker,
    remote_status_message,
    start_message,
    watch_notice_message,
)
from handoff.domain.models import AutoHandback, HandbackRequest
from handoff.domain.records import AgentCallError, HandoffRecord, HandoffState, RemoteTask
from handoff.domain.redaction import redact
from handoff.domain.registry import AgentConfig

if TYPE_CHECKING:
    from handoff.services.handoffs import HandoffService

log = logging.getLogger("handoff")

FOLLOW_UP_OPS = ("a2aPoll", "watch")
MESSAGE_ID_NAMESPACE = uuid.UUID("0b7e4f8e-7a53-4a43-9d0e-4c1f5a2f9b61")
# A2A task states that end polling, and the handoff status each becomes (COMPLETED becomes a hand-back).
A2A_END_STATES = {
    "INPUT_REQUIRED": "inputRequired",
    "FAILED": "failed",
    "REJECTED": "rejected",
    "CANCELED": "canceled",
}
A2A_AUDIT_TYPES = {
    "inputRequired": "remoteInputRequired",
    "failed": "remoteFailed",
    "rejected": "remoteRejected",
    "canceled": "remoteCanceled",
}
PENDING_APPROVAL = ("pending", "pendingauthorization")
MAX_SUMMARY = 65536
HANDBACK_FIELDS = ("outcome", "summary", "rootCause", "recommendedActions", "evidence")


def a2a_message_id(handoff_id: str) -> str:
    """The A2A ``message_id`` of a handoff's ``SendMessage``: stable, so a retry can be recognised."""
    return str(uuid.uuid5(MESSAGE_ID_NAMESPACE, f"handoff:{handoff_id}"))


def handback_from_task(task: RemoteTask, agent: str) -> HandbackRequest:
    """Turn a completed A2A task into a hand-back.

    The outcome and the other hand-back fields come from the first artifact ``data`` part that is a
    valid hand-back; otherwise the artifacts' text is handed back with outcome ``reported``.
    """
    text = "\n\n".join(a.text for a in task.artifacts if a.text.strip()).strip()
    for artifact in task.artifacts:
        data = artifact.data
        if not isinstance(data, dict) or "outcome" not in data:
            continue
        fields = {key: data[key] for key in HANDBACK_FIELDS if key in data}
        fields.setdefault("summary", text or task.status_text or "(no summary)")
        try:
            return HandbackRequest.model_validate({**fields, "agent": agent})
        except ValidationError:
            log.info("artifact data of A2A task %s is not a hand-back; handing back its text", task.task_id)
    summary = text or task.status_text or "(the task completed without a text result)"
    return HandbackRequest(agent=agent, outcome="reported", summary=summary[:MAX_SUMMARY])


def _role(message: dict[str, Any] | None) -> str:
    author = (message or {}).get("author") or {}
    return str(author.get("role") or "").lower() if isinstance(author, dict) else ""


def reply_is_complete(thread: dict[str, Any]) -> bool:
    """B's reply is complete when the last message is complete and not the user's (as Microsoft's
    client decides; a missing author counts as the agent)."""
    last = thread.get("lastMessage")
    return isinstance(last, dict) and last.get("isComplete") is True and _role(last) != "user"


def pending_request(messages: list[dict[str, Any]]) -> tuple[str, str, str] | None:
    """The first pending approval or user question: (kind, text, id), or None."""
    for message in messages:
        kind = str(message.get("messageType") or "").lower()
        approval = message.get("approval")
        if (
            kind == "approval"
            and isinstance(approval, dict)
            and str(approval.get("status") or "").lower() in PENDING_APPROVAL
        ):
            title = approval.get("title") or message.get("text") or "approval"
            return "approval", str(title), str(approval.get("id") or message.get("id"))
        question = message.get("userQuestion")
        if (
            kind == "userquestion"
            and isinstance(question, dict)
            and str(question.get("status") or "").lower() == "pending"
        ):
            text = question.get("question") or message.get("text") or "question"
            return "userQuestion", str(text), str(question.get("questionId") or message.get("id"))
    return None


def final_reply(thread: dict[str, Any], messages: list[dict[str, Any]]) -> str:
    """B's final answer: the last complete non-user message, else the thread's ``lastMessage`` text."""
    for message in reversed(messages):
        if _role(message) != "user" and message.get("isComplete", True) and str(message.get("text") or ""):
            return str(message["text"])
    return str((thread.get("lastMessage") or {}).get("text") or "")


class FollowUp:
    """A2A delivery and polling, and the automatic hand-back watch, on behalf of the service."""

    def __init__(self, service: HandoffService) -> None:
        self.service = service

    # ------------------------------------------------------------------ queue entry points

    def process(self, record: HandoffRecord, message: dict[str, Any]) -> None:
        """Run one follow-up message (``a2aPoll`` or ``watch``)."""
        target = self.service.registry.find(record.stored.target_agent)
        if target is None:
            log.warning("dropping %s for %s: target no longer registered", message.get("op"), record.id)
            return
        if message["op"] == "a2aPoll":
            self._poll_a2a(record, target)
        else:
            self._watch(record, target)

    def after_failure(
        self, record: HandoffRecord, message: dict[str, Any], attempt: int, exc: AgentCallError
    ) -> None:
        """Retry a failed poll with backoff; give up after the configured attempts."""
        from handoff.services.handoffs import backoff_seconds

        svc = self.service
        settings = svc.settings
        if exc.transient and attempt < settings.max_delivery_attempts:
            delay = backoff_seconds(
                attempt, exc.retry_after, settings.retry_base_seconds, settings.retry_max_seconds
            )
            svc.store.append_audit(
                record.id,
                "retryScheduled",
                "broker",
                {
                    "op": message["op"],
                    "attempt": attempt,
                    "reason": exc.reason,
                    "delaySeconds": round(delay, 1),
                },
            )
            svc.queue.send({**message, "attempt": attempt + 1}, delay)
            return
        why = exc.reason if not exc.transient else f"{exc.reason} (gave up after {attempt} attempts)"
        if message["op"] == "watch":
            svc._touch(record.id, lambda s: setattr(s, "watch", "stopped"))
            svc.store.append_audit(record.id, "watchStopped", "broker", {"reason": "error", "detail": why})
            return

        def lost(s: HandoffState) -> None:
            if s.status == "delivered":
                s.status = "failed"
            s.last_error = why

        svc._touch(record.id, lost)
        svc.store.append_audit(record.id, "remoteFailed", "broker", {"reason": why, "how": "unreachable"})

    # ------------------------------------------------------------------ A2A delivery

    def deliver_a2a(self, record: HandoffRecord, target: AgentConfig) -> None:
        """Send the handoff as an A2A ``SendMessage``, record the task, cross-link, start polling."""
        svc = self.service
        stored, state = record.stored, record.state
        if state.status == "accepted":
            gateway = self._remote()
            message_id = a2a_message_id(stored.id)
            task = None
            if state.create_attempted:
                # An earlier attempt may have reached the peer before failing: look before sending again.
                task = gateway.find_task(target, context_id=stored.root_id, message_id=message_id)
                if task is not None:
                    svc.store.append_audit(stored.id, "deliveryRecovered", "broker", {"taskId": task.task_id})
            if task is None:
                from handoff.services.handoffs import create_attempt

                state = svc._touch(stored.id, create_attempt(svc.clock()))
                svc.store.append_audit(
                    stored.id, "deliveryAttempt", "broker", {"attempt": state.attempts, "mode": "a2a"}
                )
                ctx = svc._message_context(record)
                task = gateway.send_message(
                    target,
                    message_id=message_id,
                    context_id=stored.root_id,
                    text=start_message(record, ctx),
                    data=a2a_payload(record, ctx),
                )
            now = svc.clock()
            found = task

            def delivered(s: HandoffState) -> None:
                s.status = "delivered"
                s.remote_task_id = found.task_id
                s.remote_state = found.state
                s.delivered_at = now
                s.last_error = None

            svc._touch(stored.id, delivered)
            svc.store.append_audit(
                stored.id, "delivered", "broker", {"taskId": task.task_id, "taskState": task.state}
            )
            if task.task_id.startswith("message:"):
                # The peer answered with a message and no task: that message is the result.
                self._hand_back(
                    stored.id, handback_from_task(task, target.name), target.name, f"a2a:{target.name}"
                )
            else:
                # Poll right away when the first answer already ends the task, else after the interval.
                ended = task.state == "COMPLETED" or task.state in A2A_END_STATES
                self._schedule("a2aPoll", stored.id, 0 if ended else svc.settings.poll_interval_seconds)
            record = svc.get_record(stored.id)
        if record.state.remote_task_id:
            ctx = dataclasses.replace(
                svc._message_context(record), target_thread_url=f"A2A task {record.state.remote_task_id}"
            )
            svc._crosslink(record, ctx)

    def _poll_a2a(self, record: HandoffRecord, target: AgentConfig) -> None:
        svc = self.service
        state = record.state
        if state.status != "delivered" or not state.remote_task_id or record.handbacks:
            return  # closed, or not delivered over A2A: nothing to poll
        task = self._remote().get_task(target, state.remote_task_id)
        if task.state != state.remote_state:
            svc._touch(record.id, lambda s: setattr(s, "remote_state", task.state))
            svc.store.append_audit(
                record.id, "remoteTaskState", "broker", {"taskId": task.task_id, "state": task.state}
            )
        if task.state == "COMPLETED":
            request = handback_from_task(task, target.name)
            self._hand_back(record.id, request, target.name, f"a2a:{target.name}")
            return
        status = A2A_END_STATES.get(task.state)
        if status is not None:
            self._end_remote(record, status, task.status_text)
            return
        started = state.delivered_at or state.updated_at
        if svc.clock() - started > timedelta(minutes=svc.settings.a2a_max_poll_minutes):
            reason = f"the A2A task did not finish within {svc.settings.a2a_max_poll_minutes:g} minutes"
            self._end_remote(record, "failed", reason)
            return
        self._schedule("a2aPoll", record.id, svc.settings.poll_interval_seconds)

    def _end_remote(self, record: HandoffRecord, status: str, detail: str) -> None:
        svc = self.service
        detail = redact(detail)  # the partner's status text is posted, stored and audited
        ctx = svc._message_context(record)
        # Post first (idempotent through its marker), then change the status: a failed post is retried.
        self._post_once(record, f"remote:{status}", remote_status_message(record, ctx, status, detail))

        def ended(s: HandoffState) -> None:
            s.status = status  # type: ignore[assignment]
            s.last_error = detail or None

        svc._touch(record.id, ended)
        svc.store.append_audit(
            record.id,
            A2A_AUDIT_TYPES[status],
            "broker",
            {"taskId": record.state.remote_task_id, "detail": detail},
        )

    # ------------------------------------------------------------------ automatic hand-back

    def auto_settings(self, record: HandoffRecord, target: AgentConfig) -> AutoHandback | None:
        """The handoff's own ``autoHandback``, else the target agent's, else None."""
        return record.stored.request.auto_handback or target.auto_handback

    def start_watch(self, record: HandoffRecord, target: AgentConfig, thread_id: str | None) -> None:
        """Right after delivery into B's thread: start watching it when automatic hand-back is on."""
        svc = self.service
        auto = self.auto_settings(record, target)
        if auto is None or not thread_id:
            return
        self._schedule("watch", record.id, svc.settings.poll_interval_seconds)
        svc._touch(record.id, lambda s: setattr(s, "watch", "watching"))
        svc.store.append_audit(
            record.id,
            "watchStarted",
            "broker",
            {
                "threadId": thread_id,
                "afterMinutes": auto.after_minutes,
                "maxWatchMinutes": auto.max_watch_minutes,
            },
        )

    def _watch(self, record: HandoffRecord, target: AgentConfig) -> None:
        svc = self.service
        state = record.state
        auto = self.auto_settings(record, target)
        if state.watch != "watching" or auto is None or not state.target_thread_id:
            return
        if state.status != "delivered" or record.handbacks:
            self._end_watch(
                record, "done", "watchEnded", {"reason": "handedBack" if record.handbacks else state.status}
            )
            return
        now = svc.clock()
        delivered_at = state.delivered_at or state.updated_at
        if now - delivered_at > timedelta(minutes=auto.max_watch_minutes):
            self._end_watch(record, "stopped", "watchExpired", {"maxWatchMinutes": auto.max_watch_minutes})
            return
        messages = svc.agents.list_messages(target, state.target_thread_id)
        pending = pending_request(messages)
        if pending is not None:
            kind, text, ref = pending
            text = redact(text)  # B's question is posted into A's thread and audited
            ctx = svc._message_context(record)
            self._post_once(record, f"watch:{ref}", watch_notice_message(record, ctx, kind, text, ref))
            self._end_watch(record, "stopped", "watchStopped", {"reason": kind, "text": text[:500]})
            return
        thread = svc.agents.get_thread(target, state.target_thread_id)
        if not reply_is_complete(thread):
            if state.reply_complete_at is not None:  # B started writing again
                svc._touch(record.id, lambda s: setattr(s, "reply_complete_at", None))
            self._schedule("watch", record.id, svc.settings.poll_interval_seconds)
            return
        complete_at = state.reply_complete_at
        if complete_at is None:
            complete_at = now
            svc._touch(record.id, lambda s: setattr(s, "reply_complete_at", now))
            svc.store.append_audit(record.id, "replyComplete", "broker", {"threadId": state.target_thread_id})
        due = complete_at + timedelta(minutes=auto.after_minutes)
        if now >= due:
            answer = final_reply(thread, messages).strip() or "(the agent's final reply was empty)"
            request = HandbackRequest(
                agent=target.name,
                thread_id=state.target_thread_id,
                outcome="reported",
                summary=answer[:MAX_SUMMARY],
            )
            svc._touch(record.id, lambda s: setattr(s, "watch", "done"))
            self._hand_back(record.id, request, target.name, "broker", automatic=True)
            return
        wait = min(svc.settings.poll_interval_seconds, max(0.0, (due - now).total_seconds()))
        self._schedule("watch", record.id, wait)

    def _end_watch(self, record: HandoffRecord, how: str, event: str, details: dict[str, Any]) -> None:
        svc = self.service
        svc._touch(record.id, lambda s: setattr(s, "watch", how))
        svc.store.append_audit(record.id, event, "broker", details)

    # ------------------------------------------------------------------ helpers

    def _hand_back(
        self, handoff_id: str, request: HandbackRequest, agent: str, actor: str, *, automatic: bool = False
    ) -> None:
        """Record a hand-back and post it into A's thread now: this worker holds the handoff's lease,
        so the queued hand-back message would only wait for it. If posting fails, that queued message
        retries it the usual way."""
        svc = self.service
        handback, _created = svc.record_handback(handoff_id, request, agent, actor, automatic=automatic)
        try:
            svc._deliver_handback(svc.get_record(handoff_id), handback.seq)
        except AgentCallError as exc:
            log.info("hand-back %s of %s left to the queue: %s", handback.seq, handoff_id, exc.reason)

    def _remote(self) -> Any:
        gateway = self.service.remote_agents
        if gateway is None:
            raise AgentCallError("no A2A client is configured", transient=False)
        return gateway

    def _schedule(self, op: str, handoff_id: str, delay: float) -> None:
        self.service.queue.send({"op": op, "handoffId": handoff_id, "attempt": 1}, delay)

    def _post_once(self, record: HandoffRecord, step: str, text: str) -> bool:
        """Post ``text`` into A's thread unless a message with its marker is there; False without a thread."""
        svc = self.service
        source_thread = record.stored.request.source.thread_id
        source = svc.registry.find(record.stored.source_agent)
        if not source_thread or source is None or source.is_a2a:
            return False
        if not svc.agents.has_message(source, source_thread, marker(record.id, step)):
            svc.agents.post_message(source, source_thread, text)
        return True
