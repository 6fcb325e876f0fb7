"""The ``/_fake/`` control endpoints of the simulated SRE Agent (no auth; for tests and ``make run``).

They let another process do over HTTP what the Python API of
:class:`~devserver.fakes.sre_agent.agent.FakeSreAgent` does: read every thread, play the agent's side
of a conversation, register triggers and switch automatic replies.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

from starlette.responses import JSONResponse, Response

from devserver.fakes._service import Call, HttpError, problem
from devserver.fakes.sre_agent.data_plane import message_fields, thread_or_404
from devserver.fakes.sre_agent.state import AGENT_ROLE

if TYPE_CHECKING:
    from devserver.fakes.sre_agent.agent import FakeSreAgent


class ControlRoutes:
    """``/_fake/threads``, ``/_fake/triggers`` and ``/_fake/auto-reply`` of one agent."""

    def __init__(self, agent: FakeSreAgent) -> None:
        """Handlers driving ``agent``; :meth:`register` adds them to its routes."""
        self.agent = agent

    def register(self) -> None:
        """Add the endpoints to the agent as control routes (not recorded, no auth, no faults)."""
        route = self.agent.route
        route("GET", "/_fake/threads", self.list_threads, control=True)
        route("POST", "/_fake/threads", self.create_thread, control=True)
        route("POST", "/_fake/threads/{thread_id}/messages", self.add_message, control=True)
        route("POST", "/_fake/threads/{thread_id}/approvals", self.add_approval, control=True)
        route("POST", "/_fake/threads/{thread_id}/questions", self.add_question, control=True)
        route("GET", "/_fake/triggers", self.list_triggers, control=True)
        route("POST", "/_fake/triggers", self.add_trigger, control=True)
        route("POST", "/_fake/auto-reply", self.set_auto_reply, control=True)

    async def list_threads(self, call: Call) -> Response:
        """Every thread with its messages and what the callers sent."""
        return JSONResponse({"value": self.agent.threads()})

    async def create_thread(self, call: Call) -> Response:
        """Start a thread as a person in the portal would."""
        data = call.json()
        text, user_id, display_name, agent = message_fields(data, "")
        body = self.agent.create_thread(
            text, user_id=user_id or "local-user", display_name=display_name or "Local User", agent=agent
        )
        return JSONResponse(body, 201)

    def _thread_id(self, call: Call) -> str:
        with self.agent.lock:
            return thread_or_404(self.agent.store, call.params["thread_id"]).id

    async def add_message(self, call: Call) -> Response:
        """Append a message (by default a complete agent message)."""
        thread_id = self._thread_id(call)
        data = call.json()
        if not isinstance(data, dict) or not isinstance(data.get("text"), str):
            raise HttpError(400, problem(400, "A JSON object with a string 'text' is required."))
        complete = data.get("complete", True)
        delay = data.get("completeAfter")
        body = self.agent.add_message(
            thread_id,
            data["text"],
            role=str(data.get("role", AGENT_ROLE)),
            user_id=data.get("userId"),
            display_name=data.get("displayName"),
            # An incomplete message without a delay stays incomplete for the length of any test.
            complete_after=float(delay) if delay else (None if complete else 3600.0),
            message_type=str(data.get("messageType", "Text")),
        )
        return JSONResponse(body, 201)

    async def add_approval(self, call: Call) -> Response:
        """Append an agent message asking for approval."""
        thread_id = self._thread_id(call)
        data = call.json(required=False) or {}
        body = self.agent.add_approval(
            thread_id,
            str(data.get("title", "Run a remediation command")),
            str(data.get("description", "")),
            status=str(data.get("status", "Pending")),
        )
        return JSONResponse(body, 201)

    async def add_question(self, call: Call) -> Response:
        """Append an agent message asking the user a question."""
        thread_id = self._thread_id(call)
        data = call.json(required=False) or {}
        body = self.agent.add_user_question(
            thread_id,
            str(data.get("question", "How should I proceed?")),
            header=data.get("header"),
            options=data.get("options", ()),
            allow_free_text=bool(data.get("allowFreeText", True)),
            status=str(data.get("status", "Pending")),
        )
        return JSONResponse(body, 201)

    async def list_triggers(self, call: Call) -> Response:
        """Every trigger with its executions."""
        base = self.agent.url_or_none()
        with self.agent.lock:
            items = [
                {**trigger.to_json(base), "executions": json.loads(json.dumps(trigger.executions))}
                for trigger in self.agent.store.triggers.values()
            ]
        return JSONResponse({"value": items})

    async def add_trigger(self, call: Call) -> Response:
        """Register an HTTP trigger (``prompt`` or ``agentPrompt``; optional ``responseForm``)."""
        data = call.json()
        if not isinstance(data, dict) or not isinstance(data.get("name"), str):
            raise HttpError(400, problem(400, "A JSON object with 'name' and 'prompt' is required."))
        prompt = data.get("prompt", data.get("agentPrompt"))
        if not isinstance(prompt, str):
            raise HttpError(400, problem(400, "A JSON object with 'name' and 'prompt' is required."))
        form = data.get("responseForm")
        if form not in (None, "flat", "nested"):
            raise HttpError(400, problem(400, "responseForm must be 'flat' or 'nested'."))
        trigger_id = self.agent.add_trigger(
            data["name"],
            prompt,
            agent=data.get("agent"),
            enabled=bool(data.get("enabled", True)),
            response_form=form,
            trigger_id=data.get("triggerId"),
        )
        return JSONResponse({"triggerId": trigger_id, "triggerUrl": self.agent.trigger_url(trigger_id)}, 201)

    async def set_auto_reply(self, call: Call) -> Response:
        """Switch simulated agent replies (``enabled``, optional ``text`` and ``delay``)."""
        data = call.json()
        if not isinstance(data, dict):
            raise HttpError(400, problem(400, "A JSON object is required."))
        text = data.get("text")
        delay = data.get("delay")
        self.agent.set_auto_reply(
            bool(data.get("enabled", True)),
            text=str(text) if text is not None else None,
            delay=float(delay) if delay is not None else None,
        )
        return JSONResponse(
            {"enabled": self.agent.auto_reply, "delay": self.agent.auto_reply_delay, "text": text}
        )
