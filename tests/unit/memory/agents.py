"""The :class:`~handoff.ports.AgentGateway` port in memory: SRE Agents with threads and messages.

It answers as :class:`handoff.adapters.sre_agent.SreAgentGateway` does: ``find_thread`` recognises the
broker's thread with :func:`handoff.domain.messages.is_handoff_thread` (by prompt for an HTTP-trigger
agent) and ``find_message`` the broker's message with :func:`~handoff.domain.messages.is_marked`; thread
objects and messages are camelCase as the agent's API gives them (``lastMessage``, ``isComplete``,
``author.role``, ``timeStamp``); an unknown thread is a permanent 404. Tests play the agent with
:meth:`MemoryAgentGateway.reply`, :meth:`~MemoryAgentGateway.ask_approval` and
:meth:`~MemoryAgentGateway.ask_question`, and make calls fail with :attr:`MemoryAgentGateway.faults`.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from handoff.domain.messages import is_handoff_thread, is_marked
from handoff.domain.records import AgentCallError
from tests.unit.memory.faults import AgentFaults

AGENT_ROLE = "SREAgent"
USER_ROLE = "User"
BROKER_USER = "handoff-broker"
RECENT = 50


@dataclass
class Call:
    """One call the broker made."""

    op: str
    agent: str
    thread_id: str | None = None
    since: datetime | None = None


@dataclass
class MemoryMessage:
    """A message of a thread."""

    id: str
    text: str
    role: str
    at: datetime
    user_id: str | None = None
    complete: bool = True
    message_type: str = "Text"
    approval: dict[str, Any] | None = None
    user_question: dict[str, Any] | None = None

    def to_json(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "id": self.id,
            "text": self.text,
            "timeStamp": self.at.isoformat().replace("+00:00", "Z"),
            "author": {"role": self.role, "userId": self.user_id},
            "isComplete": self.complete,
            "messageType": self.message_type,
        }
        if self.approval is not None:
            data["approval"] = dict(self.approval)
        if self.user_question is not None:
            data["userQuestion"] = dict(self.user_question)
        return data


@dataclass
class MemoryThread:
    """A thread of one agent; its first message is the start message (or the trigger's prompt)."""

    id: str
    agent: str
    title: str
    created: datetime
    messages: list[MemoryMessage] = field(default_factory=list)
    trigger_payload: dict[str, Any] | None = None

    def texts(self, role: str | None = None) -> list[str]:
        """The texts of the thread's messages (of one author role), oldest first."""
        return [m.text for m in self.messages if role is None or m.role == role]

    def to_json(self) -> dict[str, Any]:
        start, last = self.messages[0], self.messages[-1]
        return {
            "id": self.id,
            "title": self.title,
            "createdTimestamp": self.created.isoformat().replace("+00:00", "Z"),
            "startMessage": {"text": start.text, "author": {"role": start.role}},
            "lastMessage": {
                "text": last.text,
                "isComplete": last.complete,
                "author": {"role": last.role, "userId": last.user_id},
            },
        }


class MemoryAgentGateway:
    """Implements :class:`handoff.ports.AgentGateway` in memory, for every registered SRE Agent."""

    def __init__(self, clock: Callable[[], datetime] | None = None) -> None:
        self.clock = clock or (lambda: datetime.now(UTC))
        self.faults = AgentFaults()
        self.calls: list[Call] = []
        self.threads: dict[str, MemoryThread] = {}
        # An HTTP trigger that answers without the thread's id (the broker cannot link it).
        self.trigger_answers_thread = True
        # Whether a posted message's id comes back in the answer.
        self.answers_message_ids = True
        # Called with the operation's name at the start of every call (a test's hook: a stall, a race).
        self.on_call: Callable[[str], None] | None = None
        self._ids = itertools.count(1)
        self._last_time: datetime | None = None

    # ---------------------------------------------------------------- AgentGateway

    def create_thread(self, agent: Any, text: str) -> str:
        self._call("create_thread", agent)
        thread = self._new_thread(agent.name, text, title=text.splitlines()[0][:120] if text else "")
        self.faults.after("create_thread")
        return thread.id

    def fire_trigger(self, agent: Any, payload: dict[str, Any]) -> str | None:
        self._call("fire_trigger", agent)
        prompt = (
            f"Handoff {payload.get('handoffId')} from {payload.get('sourceAgent')}: {payload.get('title')}"
        )
        thread = self._new_thread(agent.name, prompt, title=prompt[:120])
        thread.trigger_payload = dict(payload)
        self.faults.after("fire_trigger")
        return thread.id if self.trigger_answers_thread else None

    def find_thread(self, agent: Any, needle: str, since: datetime | None = None) -> str | None:
        self._call("find_thread", agent, since=since)
        trigger = getattr(agent.delivery, "trigger_url", None) is not None
        for thread in sorted(self._threads_of(agent.name), key=lambda t: t.created, reverse=True):
            if is_handoff_thread(needle, thread.title, thread.messages[0].text, trigger=trigger):
                return thread.id
        return None

    def post_message(self, agent: Any, thread_id: str, text: str) -> str | None:
        self._call("post_message", agent, thread_id)
        thread = self._thread(agent, thread_id)
        message = self._append(thread, text, USER_ROLE, user_id=BROKER_USER)
        self.faults.after("post_message")
        return message.id if self.answers_message_ids else None

    def find_message(
        self, agent: Any, thread_id: str, needle: str, since: datetime | None = None
    ) -> dict[str, Any] | None:
        self._call("find_message", agent, thread_id, since)
        thread = self._thread(agent, thread_id)
        for message in reversed(thread.messages):
            if is_marked(message.text, needle):
                return message.to_json()
        return None

    def has_message(self, agent: Any, thread_id: str, needle: str, since: datetime | None = None) -> bool:
        return self.find_message(agent, thread_id, needle, since) is not None

    def get_thread(self, agent: Any, thread_id: str) -> dict[str, Any]:
        self._call("get_thread", agent, thread_id)
        return self._thread(agent, thread_id).to_json()

    def list_messages(self, agent: Any, thread_id: str) -> list[dict[str, Any]]:
        self._call("list_messages", agent, thread_id)
        return [message.to_json() for message in self._thread(agent, thread_id).messages[-RECENT:]]

    # ---------------------------------------------------------------- playing the agent (tests only)

    def thread(self, thread_id: str) -> MemoryThread:
        """A thread by id."""
        return self.threads[thread_id]

    def open_thread(self, agent: str, text: str = "Investigating checkout latency") -> str:
        """A thread someone started on ``agent`` (the source thread of a handoff)."""
        return self._new_thread(agent, text, title=text[:120], user_id="someone").id

    def threads_of(self, agent: str) -> list[MemoryThread]:
        """The agent's threads, oldest first."""
        return sorted(self._threads_of(agent), key=lambda t: t.created)

    def posted(self, thread_id: str) -> list[str]:
        """What the broker posted into a thread after its start message, oldest first."""
        return [m.text for m in self.threads[thread_id].messages[1:] if m.user_id == BROKER_USER]

    def reply(self, thread_id: str, text: str, *, complete: bool = True) -> MemoryMessage:
        """The agent answers in its thread."""
        return self._append(self.threads[thread_id], text, AGENT_ROLE, complete=complete)

    def say(self, thread_id: str, text: str) -> MemoryMessage:
        """A person writes into the thread."""
        return self._append(self.threads[thread_id], text, USER_ROLE, user_id="someone")

    def complete(self, thread_id: str) -> None:
        """The agent's last message finishes streaming."""
        self.threads[thread_id].messages[-1].complete = True

    def ask_approval(self, thread_id: str, title: str, status: str = "PendingAuthorization") -> str:
        """The agent asks for an approval; returns its id."""
        ref = f"approval-{next(self._ids)}"
        message = self._append(self.threads[thread_id], f"Approval required: {title}", AGENT_ROLE)
        message.message_type = "Approval"
        message.approval = {"id": ref, "title": title, "status": status}
        return ref

    def ask_question(self, thread_id: str, question: str, status: str = "Pending") -> str:
        """The agent asks the user a question; returns its id."""
        ref = f"question-{next(self._ids)}"
        message = self._append(self.threads[thread_id], question, AGENT_ROLE)
        message.message_type = "UserQuestion"
        message.user_question = {"questionId": ref, "question": question, "status": status}
        return ref

    def ops(self, op: str | None = None) -> list[str]:
        """The operations called, in order (only ``op`` when given)."""
        return [call.op for call in self.calls if op is None or call.op == op]

    # ---------------------------------------------------------------- plumbing

    def _call(self, op: str, agent: Any, thread_id: str | None = None, since: datetime | None = None) -> None:
        self.calls.append(Call(op, agent.name, thread_id, since))
        if self.on_call is not None:
            self.on_call(op)
        self.faults.before(op)

    def _threads_of(self, agent: str) -> list[MemoryThread]:
        return [thread for thread in self.threads.values() if thread.agent == agent]

    def _thread(self, agent: Any, thread_id: str) -> MemoryThread:
        thread = self.threads.get(thread_id)
        if thread is None or thread.agent != agent.name:
            raise AgentCallError(
                f"GET {agent.name}/api/v1/threads/{thread_id} answered 404", transient=False, status=404
            )
        return thread

    def _time(self) -> datetime:
        # Strictly increasing, as the agent's own timestamps are.
        now = self.clock()
        if self._last_time is not None and now <= self._last_time:
            now = self._last_time + timedelta(milliseconds=1)
        self._last_time = now
        return now

    def _new_thread(self, agent: str, text: str, *, title: str, user_id: str = BROKER_USER) -> MemoryThread:
        at = self._time()
        thread = MemoryThread(id=f"{agent}-thread-{next(self._ids)}", agent=agent, title=title, created=at)
        thread.messages.append(MemoryMessage(f"msg-{next(self._ids)}", text, USER_ROLE, at, user_id))
        self.threads[thread.id] = thread
        return thread

    def _append(
        self, thread: MemoryThread, text: str, role: str, *, user_id: str | None = None, complete: bool = True
    ) -> MemoryMessage:
        message = MemoryMessage(f"msg-{next(self._ids)}", text, role, self._time(), user_id, complete)
        thread.messages.append(message)
        return message
