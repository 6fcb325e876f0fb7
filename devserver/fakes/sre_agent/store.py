"""The threads and HTTP triggers of one simulated SRE Agent, and the operations that change them."""

from __future__ import annotations

import itertools
import time
import uuid
from typing import Any, Protocol

from devserver.fakes._service import iso_at
from devserver.fakes.sre_agent.state import (
    AGENT_ROLE,
    USER_ROLE,
    Message,
    ReplyText,
    Thread,
    Trigger,
    render_trigger_prompt,
    title_from,
)


class AgentPersona(Protocol):
    """What the store reads of its agent when it writes the agent's own messages.

    Read at every write, so that changing the agent's settings takes effect at once.
    """

    display_name: str
    auto_reply: bool
    auto_reply_text: ReplyText
    auto_reply_delay: float


class AgentStore:
    """Threads and HTTP triggers of one agent.

    Not thread-safe by itself: every caller holds the agent's lock, because the server thread
    changes the state while tests read it from theirs.
    """

    def __init__(self, persona: AgentPersona) -> None:
        """An empty store whose agent messages and automatic replies follow ``persona``."""
        self.persona = persona
        self.threads: dict[str, Thread] = {}
        self.triggers: dict[str, Trigger] = {}
        self._seq = itertools.count(1)

    # ----------------------------------------------------------------- lookups
    def sorted_threads(self) -> list[Thread]:
        """Every thread, oldest first."""
        return sorted(self.threads.values(), key=lambda thread: thread.seq)

    def find_thread(self, thread_id: str) -> Thread | None:
        """The thread with this id, compared case-insensitively as the service does."""
        thread = self.threads.get(thread_id)
        if thread is None:
            for key, value in self.threads.items():
                if key.lower() == thread_id.lower():
                    return value
        return thread

    def thread_or_key_error(self, thread_id: str) -> Thread:
        """The thread with this id (``KeyError`` if unknown)."""
        thread = self.find_thread(thread_id)
        if thread is None:
            raise KeyError(thread_id)
        return thread

    def find_trigger(self, trigger_id: str) -> Trigger | None:
        """The trigger with this id, compared case-insensitively as the service does."""
        trigger = self.triggers.get(trigger_id)
        if trigger is None:
            trigger = next((t for key, t in self.triggers.items() if key.lower() == trigger_id.lower()), None)
        return trigger

    # ----------------------------------------------------------------- changes
    def clear_threads(self) -> None:
        """Drop every thread and every trigger execution (the triggers stay)."""
        self.threads.clear()
        for trigger in self.triggers.values():
            trigger.executions.clear()

    def new_thread(
        self,
        text: str,
        *,
        user_id: str | None,
        display_name: str | None,
        agent: str | None,
        source: str,
        title: str | None = None,
        trigger_id: str | None = None,
        created_by: str | None = None,
    ) -> Thread:
        """Start a thread with ``text`` as its user message (and the automatic reply, if on)."""
        last = max((thread.created for thread in self.threads.values()), default=None)
        created = _next_time(last)
        start = Message(
            id=str(uuid.uuid4()),
            seq=next(self._seq),
            role=USER_ROLE,
            user_id=user_id,
            display_name=display_name,
            text=text,
            created=created,
            agent=agent,
        )
        thread = Thread(
            id=str(uuid.uuid4()),
            seq=next(self._seq),
            title=title or title_from(text),
            source=source,
            created=created,
            messages=[start],
            agent=agent,
            trigger_id=trigger_id,
            created_by=created_by,
        )
        self.threads[thread.id] = thread
        self.reply_to(thread, text)
        return thread

    def append(
        self,
        thread: Thread,
        *,
        role: str,
        text: str,
        user_id: str | None = None,
        display_name: str | None = None,
        message_type: str = "Text",
        complete_after: float | None = None,
        approval: dict[str, Any] | None = None,
        user_question: dict[str, Any] | None = None,
        agent: str | None = None,
    ) -> Message:
        """Add a message to ``thread``; one of the agent itself gets the agent's name by default."""
        created = _next_time(thread.messages[-1].created)
        if role == AGENT_ROLE:
            user_id = user_id or "agent-default"
            display_name = display_name or self.persona.display_name
        message = Message(
            id=str(uuid.uuid4()),
            seq=next(self._seq),
            role=role,
            user_id=user_id,
            display_name=display_name,
            text=text,
            created=created,
            message_type=message_type,
            complete_at=created + complete_after if complete_after else None,
            approval=approval,
            user_question=user_question,
            agent=agent,
        )
        thread.messages.append(message)
        return message

    def reply_to(self, thread: Thread, prompt: str) -> None:
        """Append the simulated agent reply to ``prompt`` when automatic replies are on."""
        persona = self.persona
        if not persona.auto_reply:
            return
        text_source = persona.auto_reply_text
        text = text_source(prompt) if callable(text_source) else text_source
        self.append(thread, role=AGENT_ROLE, text=text, complete_after=max(persona.auto_reply_delay, 1e-3))

    def add_approval(self, thread: Thread, title: str, description: str, status: str) -> Message:
        """Append an agent message asking for approval (``messageType: Approval``)."""
        return self.append(
            thread,
            role=AGENT_ROLE,
            text=f"Approval required: {title}",
            message_type="Approval",
            approval={
                "id": str(uuid.uuid4()),
                "title": title,
                "description": description,
                "status": status,
            },
        )

    def add_user_question(
        self,
        thread: Thread,
        question: str,
        *,
        header: str | None,
        options: list[dict[str, str]],
        allow_free_text: bool,
        status: str,
    ) -> Message:
        """Append an agent message asking the user a question (``messageType: UserQuestion``).

        ``options`` are already in the service's shape (see :func:`~.state.question_options`).
        """
        return self.append(
            thread,
            role=AGENT_ROLE,
            text=question,
            message_type="UserQuestion",
            user_question={
                "questionId": str(uuid.uuid4()),
                "question": question,
                "header": header,
                "options": options,
                "allowFreeText": allow_free_text,
                "status": status,
            },
        )

    def set_approval_status(self, approval_id: str, status: str) -> dict[str, Any] | None:
        """Set the status of an approval in any thread; its new state, or None if there is none."""
        for thread in self.threads.values():
            for message in thread.messages:
                if message.approval and message.approval.get("id", "").lower() == approval_id.lower():
                    message.approval["status"] = status
                    return dict(message.approval)
        return None

    def run_trigger(self, trigger: Trigger, payload: Any, caller: str | None) -> dict[str, Any]:
        """Start the thread a trigger's webhook starts and record the execution; returns it."""
        text = render_trigger_prompt(trigger.prompt, payload)
        thread = self.new_thread(
            text,
            user_id=caller,
            display_name=f"HTTP Trigger: {trigger.name}",
            agent=trigger.agent,
            source="HttpTrigger",
            title=f"HTTP Trigger: {trigger.name}",
            trigger_id=trigger.id,
            created_by=caller,
        )
        execution = {
            "executionId": str(uuid.uuid4()),
            "executionTime": iso_at(thread.created),
            "threadId": thread.id,
            "success": True,
            "payload": payload,
        }
        trigger.executions.append(execution)
        return execution


def _next_time(previous: float | None = None) -> float:
    # Strictly increasing timestamps keep ordering by time stable for fast callers.
    now = time.time()
    return max(now, previous + 0.001) if previous is not None else now
