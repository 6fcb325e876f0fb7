"""The automatic hand-back: the target agent's (B's) SRE Agent thread watched after delivery (``watch``
messages that reschedule themselves, a second after delivery and then further apart:
:func:`handoff.domain.work.follow_up_delay`). Once B's reply has been complete for ``afterMinutes``, its
final answer is handed back; a pending approval or question in B's thread stops the watch and is announced
in A's thread; the watch ends with the handoff and after ``maxWatchMinutes``."""

from __future__ import annotations

from datetime import timedelta
from typing import Any, Literal

from handoff.domain.audit_events import Actor, EventType
from handoff.domain.messages import watch_notice_message
from handoff.domain.models import AutoHandback, HandbackRequest
from handoff.domain.records import HandoffRecord
from handoff.domain.redaction import redact
from handoff.domain.registry import AgentConfig
from handoff.domain.work import Watch, follow_up_delay
from handoff.services.context import ServiceContext
from handoff.services.source_thread import SourceThread
from handoff.services.state_writes import touch

PENDING_APPROVAL = ("pending", "pendingauthorization")
MAX_SUMMARY = 65536
WatchEnd = Literal["stopped", "done"]


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


def auto_settings(record: HandoffRecord, target: AgentConfig) -> AutoHandback | None:
    """The handoff's own ``autoHandback``, else the target agent's, else None."""
    return record.stored.request.auto_handback or target.auto_handback


class ThreadWatch:
    """Watching B's thread for the automatic hand-back."""

    def __init__(self, ctx: ServiceContext, source_thread: SourceThread) -> None:
        self.ctx = ctx
        self.source_thread = source_thread

    def start(self, record: HandoffRecord, target: AgentConfig, thread_id: str | None) -> None:
        """Right after delivery into B's thread: start watching it when automatic hand-back is on."""
        auto = auto_settings(record, target)
        if auto is None or not thread_id:
            return
        self._schedule(record.id, follow_up_delay(0.0, self.ctx.settings.poll_interval_seconds))
        touch(self.ctx, record.id, lambda s: setattr(s, "watch", "watching"))
        self.ctx.store.append_audit(
            record.id,
            EventType.WATCH_STARTED,
            Actor.BROKER,
            {
                "threadId": thread_id,
                "afterMinutes": auto.after_minutes,
                "maxWatchMinutes": auto.max_watch_minutes,
            },
        )

    def watch(self, record: HandoffRecord, target: AgentConfig) -> None:
        """One ``watch``: look at B's thread, then hand back, stop, or look again later."""
        ctx = self.ctx
        state = record.state
        auto = auto_settings(record, target)
        thread_id = state.target_thread_id
        if state.watch != "watching" or auto is None or not thread_id:
            return
        if state.status != "delivered" or record.handbacks:
            reason = "handedBack" if record.handbacks else state.status
            self._end(record, "done", EventType.WATCH_ENDED, {"reason": reason})
            return
        now = ctx.clock()
        delivered_at = state.delivered_at or state.updated_at
        if now - delivered_at > timedelta(minutes=auto.max_watch_minutes):
            self._end(record, "stopped", EventType.WATCH_EXPIRED, {"maxWatchMinutes": auto.max_watch_minutes})
            return
        messages = ctx.agents.list_messages(target, thread_id)
        pending = pending_request(messages)
        if pending is not None:
            kind, text, ref = pending
            text = redact(text)  # B's question is posted into A's thread and audited
            notice = watch_notice_message(record, ctx.message_context(record), kind, text, ref)
            self.source_thread.post_notice(record, f"watch:{ref}", notice)
            self._end(record, "stopped", EventType.WATCH_STOPPED, {"reason": kind, "text": text[:500]})
            return
        thread = ctx.agents.get_thread(target, thread_id)
        if not reply_is_complete(thread):
            if state.reply_complete_at is not None:  # B started writing again
                touch(ctx, record.id, lambda s: setattr(s, "reply_complete_at", None))
            waited = (now - delivered_at).total_seconds()
            self._schedule(record.id, follow_up_delay(waited, ctx.settings.poll_interval_seconds))
            return
        complete_at = state.reply_complete_at
        if complete_at is None:
            complete_at = now
            touch(ctx, record.id, lambda s: setattr(s, "reply_complete_at", now))
            ctx.store.append_audit(record.id, EventType.REPLY_COMPLETE, Actor.BROKER, {"threadId": thread_id})
        due = complete_at + timedelta(minutes=auto.after_minutes)
        if now >= due:
            answer = final_reply(thread, messages).strip() or "(the agent's final reply was empty)"
            request = HandbackRequest(
                agent=target.name, thread_id=thread_id, outcome="reported", summary=answer[:MAX_SUMMARY]
            )
            touch(ctx, record.id, lambda s: setattr(s, "watch", "done"))
            self.source_thread.hand_back_now(record.id, request, target.name, Actor.BROKER, automatic=True)
            return
        self._schedule(
            record.id, min(ctx.settings.poll_interval_seconds, max(0.0, (due - now).total_seconds()))
        )

    def give_up(self, handoff_id: str, reason: str) -> None:
        """B's thread could not be read (permanently, or after the last attempt): the watch stops."""
        touch(self.ctx, handoff_id, lambda s: setattr(s, "watch", "stopped"))
        self.ctx.store.append_audit(
            handoff_id, EventType.WATCH_STOPPED, Actor.BROKER, {"reason": "error", "detail": reason}
        )

    def _end(self, record: HandoffRecord, how: WatchEnd, event: EventType, details: dict[str, Any]) -> None:
        touch(self.ctx, record.id, lambda s: setattr(s, "watch", how))
        self.ctx.store.append_audit(record.id, event, Actor.BROKER, details)

    def _schedule(self, handoff_id: str, delay: float) -> None:
        self.ctx.queue.send(Watch(handoff_id=handoff_id).wire(), delay)
