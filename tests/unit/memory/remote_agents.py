"""The :class:`~handoff.ports.RemoteAgentGateway` port in memory: A2A peers whose tasks a test advances.

It answers as :class:`handoff.adapters.a2a_client.A2AClientGateway` does: ``send_message`` returns the
task the peer created (or, when the peer answers with a message, a completed task whose id starts
with ``message:``); ``get_task`` of an unknown task is a permanent failure (the peer's ``TaskNotFoundError``);
``find_task`` finds the task whose history holds the message id, or None when the peer does not list
tasks. Calls fail on demand through :attr:`MemoryRemoteAgentGateway.faults`. A peer declares push
notifications when :attr:`MemoryRemoteAgentGateway.pushes` says so; the push URL and token the broker
asked for are kept with the message sent.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from typing import Any

from handoff.domain.records import AgentCallError, RemoteArtifact, RemoteTask
from tests.unit.memory.agents import Call
from tests.unit.memory.faults import AgentFaults


@dataclass
class SentMessage:
    """A ``SendMessage`` the broker made."""

    agent: str
    message_id: str
    context_id: str
    text: str
    data: dict[str, Any]
    push_url: str | None = None
    push_token: str | None = None
    contract: dict[str, Any] | None = None


@dataclass
class MemoryTask:
    """A task on a peer."""

    task_id: str
    context_id: str
    agent: str
    state: str
    status_text: str = ""
    artifacts: list[RemoteArtifact] = field(default_factory=list)
    message_ids: list[str] = field(default_factory=list)

    def snapshot(self) -> RemoteTask:
        return RemoteTask(
            task_id=self.task_id,
            context_id=self.context_id,
            state=self.state,
            status_text=self.status_text,
            artifacts=tuple(self.artifacts),
        )


class MemoryRemoteAgentGateway:
    """Implements :class:`handoff.ports.RemoteAgentGateway` in memory, for every A2A peer."""

    def __init__(self) -> None:
        self.faults = AgentFaults()
        self.calls: list[Call] = []
        self.sent: list[SentMessage] = []
        self.tasks: dict[str, MemoryTask] = {}
        self.initial_state = "SUBMITTED"
        self.lists_tasks = True
        # Whether the peers' agent cards declare push notifications.
        self.pushes = False
        # The next SendMessage is answered with a message (this text) instead of a task.
        self.answer_with_message: str | None = None
        self._ids = itertools.count(1)

    # ---------------------------------------------------------------- RemoteAgentGateway

    def send_message(
        self,
        agent: Any,
        *,
        message_id: str,
        context_id: str,
        text: str,
        data: dict[str, Any],
        contract: dict[str, Any] | None = None,
        push_url: str | None = None,
        push_token: str | None = None,
    ) -> RemoteTask:
        self._call("send_message", agent)
        self.sent.append(
            SentMessage(agent.name, message_id, context_id, text, dict(data), push_url, push_token, contract)
        )
        if self.answer_with_message is not None:
            reply, self.answer_with_message = self.answer_with_message, None
            artifact = RemoteArtifact(name="reply", text=reply, data=None)
            return RemoteTask(f"message:{message_id}", context_id, "COMPLETED", artifacts=(artifact,))
        task = MemoryTask(f"task-{next(self._ids)}", context_id, agent.name, self.initial_state)
        task.message_ids.append(message_id)
        self.tasks[task.task_id] = task
        self.faults.after("send_message")
        return task.snapshot()

    def get_task(self, agent: Any, task_id: str) -> RemoteTask:
        self._call("get_task", agent)
        task = self.tasks.get(task_id)
        if task is None or task.agent != agent.name:
            raise AgentCallError(
                f"GetTask {agent.name} answered TaskNotFoundError: {task_id}", transient=False
            )
        return task.snapshot()

    def supports_push(self, agent: Any) -> bool:
        self._call("supports_push", agent)
        return self.pushes

    def find_task(self, agent: Any, *, context_id: str, message_id: str) -> RemoteTask | None:
        self._call("find_task", agent)
        if not self.lists_tasks:
            return None
        for task in self.tasks.values():
            if task.agent == agent.name and task.context_id == context_id and message_id in task.message_ids:
                return task.snapshot()
        return None

    # ---------------------------------------------------------------- playing the peer (tests only)

    def only_task(self) -> MemoryTask:
        """The one task created so far."""
        (task,) = self.tasks.values()
        return task

    def advance(
        self,
        task_id: str,
        state: str,
        *,
        status_text: str = "",
        text: str = "",
        data: dict[str, Any] | None = None,
        contract: dict[str, Any] | None = None,
    ) -> None:
        """Move a task to ``state`` (a TaskState name: WORKING, COMPLETED, FAILED, ...), with an artifact
        of ``text``/``data`` (``contract``: a data part tagged as the contract's hand-back) when given."""
        task = self.tasks[task_id]
        task.state = state
        task.status_text = status_text
        if text or data is not None or contract is not None:
            task.artifacts.append(RemoteArtifact(name="result", text=text, data=data, contract=contract))

    def ops(self, op: str | None = None) -> list[str]:
        """The operations called, in order (only ``op`` when given)."""
        return [call.op for call in self.calls if op is None or call.op == op]

    def _call(self, op: str, agent: Any) -> None:
        self.calls.append(Call(op, agent.name))
        self.faults.before(op)
