"""Data-plane endpoints of the simulated SRE Agent for threads, messages and approvals.

Also the request checks the other endpoint groups share: paging and ordering query parameters and
the validation of a message body, answered as the service does (``400`` problem details).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from starlette.responses import JSONResponse, Response

from devserver.fakes._service import Call, HttpError, problem
from devserver.fakes.sre_agent.state import USER_ROLE, Thread, json_field
from devserver.fakes.sre_agent.store import AgentStore

if TYPE_CHECKING:
    from devserver.fakes.sre_agent.agent import FakeSreAgent

MessageFields = tuple[str, str | None, str | None, str | None]


class ThreadRoutes:
    """``/api/v1/threads`` and ``/api/v1/approvals`` of one agent."""

    def __init__(self, agent: FakeSreAgent) -> None:
        """Handlers for ``agent``'s state; :meth:`register` adds them to its routes."""
        self.agent = agent

    @property
    def store(self) -> AgentStore:
        """The agent's state (guard every use with the agent's lock)."""
        return self.agent.store

    def register(self) -> None:
        """Add the endpoints to the agent, in the order they are matched."""
        route = self.agent.route
        route("GET", "/api/v1/threads", self.list_threads)
        route("POST", "/api/v1/threads", self.create_thread)
        route("GET", "/api/v1/threads/{thread_id}", self.get_thread)
        route("DELETE", "/api/v1/threads/{thread_id}", self.delete_thread)
        route("GET", "/api/v1/threads/{thread_id}/messages", self.list_messages)
        route("POST", "/api/v1/threads/{thread_id}/messages", self.post_message)
        route("GET", "/api/v1/approvals/{thread_id}", self.list_approvals)
        route("POST", "/api/v1/approvals/{approval_id}/approve", self.approve)
        route("POST", "/api/v1/approvals/{thread_id}/{approval_id}/decision", self.decide)

    async def list_threads(self, call: Call) -> Response:
        """``GET /api/v1/threads`` with ``$orderby``, ``$skip`` and ``$top``."""
        order = requested_order(
            call, {"createdtimestamp": "created", "modifiedtimestamp": "modified", "title": "title"}
        )
        now = time.time()
        with self.agent.lock:
            threads = self.store.sorted_threads()
            if order is not None:
                key, desc = order
                sort_key: Callable[[Thread], Any] = {
                    "created": lambda t: (t.created, t.seq),
                    "modified": lambda t: (t.modified(now), t.seq),
                    "title": lambda t: (t.title.lower(), t.seq),
                }[key]
                threads = sorted(threads, key=sort_key, reverse=desc)
            page = [thread.to_json(now) for thread in page_of(threads, call)]
        return JSONResponse({"value": page})

    async def create_thread(self, call: Call) -> Response:
        """``POST /api/v1/threads`` with ``{"startMessage": {...}}``."""
        data = call.json()
        if not isinstance(data, dict):
            raise HttpError(400, problem(400, "The request body must be a JSON object."))
        present, start = json_field(data, "startMessage")
        if not present:
            raise validation_error({"startMessage": ["The startMessage field is required."]})
        text, user_id, display_name, agent = message_fields(start, "startMessage")
        oid = (call.claims or {}).get("oid")
        with self.agent.lock:
            thread = self.store.new_thread(
                text,
                user_id=user_id or oid,
                display_name=display_name,
                agent=agent,
                source="Chat",
                created_by=oid,
            )
            body = thread.to_json(time.time())
        return JSONResponse(body)

    async def get_thread(self, call: Call) -> Response:
        """``GET /api/v1/threads/{id}``."""
        with self.agent.lock:
            body = thread_or_404(self.store, call.params["thread_id"]).to_json(time.time())
        return JSONResponse(body)

    async def delete_thread(self, call: Call) -> Response:
        """``DELETE /api/v1/threads/{id}``."""
        with self.agent.lock:
            thread = thread_or_404(self.store, call.params["thread_id"])
            del self.store.threads[thread.id]
        return Response(status_code=204)

    async def list_messages(self, call: Call) -> Response:
        """``GET /api/v1/threads/{id}/messages`` with ``$orderby=timestamp``, ``$skip`` and ``$top``."""
        order = requested_order(call, {"timestamp": "time"})
        now = time.time()
        with self.agent.lock:
            messages = list(thread_or_404(self.store, call.params["thread_id"]).messages)
            if order is not None and order[1]:
                messages.reverse()
            page = [message.to_json(now) for message in page_of(messages, call)]
        return JSONResponse({"value": page})

    async def post_message(self, call: Call) -> Response:
        """``POST /api/v1/threads/{id}/messages``: a user message (and the automatic reply, if on)."""
        data = call.json()
        text, user_id, display_name, agent = message_fields(data, "")
        oid = (call.claims or {}).get("oid")
        with self.agent.lock:
            thread = thread_or_404(self.store, call.params["thread_id"])
            message = self.store.append(
                thread,
                role=USER_ROLE,
                text=text,
                user_id=user_id or oid,
                display_name=display_name,
                agent=agent,
            )
            body = message.to_json(time.time())
            self.store.reply_to(thread, text)
        return JSONResponse(body)

    async def list_approvals(self, call: Call) -> Response:
        """``GET /api/v1/approvals/{threadId}``: the approvals still waiting for a decision."""
        with self.agent.lock:
            thread = thread_or_404(self.store, call.params["thread_id"])
            pending = [
                dict(message.approval)
                for message in thread.messages
                if message.approval and message.approval.get("status") in ("Pending", "PendingAuthorization")
            ]
        return JSONResponse({"value": pending})

    async def approve(self, call: Call) -> Response:
        """``POST /api/v1/approvals/{approvalId}/approve``."""
        with self.agent.lock:
            return JSONResponse(self._set_approval(call.params["approval_id"], "Approved"))

    async def decide(self, call: Call) -> Response:
        """``POST /api/v1/approvals/{threadId}/{approvalId}/decision`` (approve unless told to reject)."""
        data = call.json(required=False) or {}
        decision = str(data.get("decision", "approve") if isinstance(data, dict) else "approve").lower()
        status = "Rejected" if decision in ("reject", "rejected", "deny", "denied") else "Approved"
        with self.agent.lock:
            thread_or_404(self.store, call.params["thread_id"])
            return JSONResponse(self._set_approval(call.params["approval_id"], status))

    def _set_approval(self, approval_id: str, status: str) -> dict[str, Any]:
        approval = self.store.set_approval_status(approval_id, status)
        if approval is None:
            raise HttpError(404, problem(404, f"Approval '{approval_id}' was not found."))
        return approval


def thread_or_404(store: AgentStore, thread_id: str) -> Thread:
    """The thread, or the service's ``404`` problem for an unknown id."""
    thread = store.find_thread(thread_id)
    if thread is None:
        raise HttpError(404, problem(404, f"Thread '{thread_id}' was not found."))
    return thread


def validation_error(errors: Mapping[str, list[str]]) -> HttpError:
    """The ``400`` problem details ASP.NET Core answers for a body that fails model validation."""
    return HttpError(
        400,
        problem(400, "One or more validation errors occurred.", errors),
        media_type="application/problem+json",
    )


def message_fields(data: Any, prefix: str) -> MessageFields:
    """Check ``{"text", "userId", "displayName", "agent"}``; returns the four values."""
    if not isinstance(data, dict):
        raise validation_error({prefix or "$": ["An object is required."]})
    errors: dict[str, list[str]] = {}
    values: dict[str, str | None] = {}
    for key, required in (("text", True), ("userId", False), ("displayName", False), ("agent", False)):
        present, value = json_field(data, key)
        name = f"{prefix}.{key}" if prefix else key
        if not present or value is None:
            if required:
                errors[name] = [f"The {key} field is required."]
            values[key] = None
        elif not isinstance(value, str):
            errors[name] = [f"The {key} field must be a string."]
        elif required and not value.strip():
            errors[name] = [f"The {key} field must not be empty."]
        else:
            values[key] = value
    if errors:
        raise validation_error(errors)
    return values["text"] or "", values["userId"], values["displayName"], values["agent"]


def int_query_param(call: Call, *names: str) -> int | None:
    """A non-negative integer query parameter (first of ``names`` present), None when absent."""
    raw = call.query_value(*names)
    if raw is None or raw == "":
        return None
    try:
        value = int(raw)
    except ValueError:
        raise HttpError(400, problem(400, f"Query parameter {names[0]} must be an integer.")) from None
    if value < 0:
        raise HttpError(400, problem(400, f"Query parameter {names[0]} must not be negative."))
    return value


def requested_order(call: Call, fields: Mapping[str, str]) -> tuple[str, bool] | None:
    """``$orderby``: (the field it names, descending?) among ``fields``, None when not given."""
    raw = call.query_value("$orderby", "orderby")
    if not raw:
        return None
    parts = raw.replace("+", " ").split()
    key = fields.get(parts[0].lower()) if parts else None
    direction = parts[1].lower() if len(parts) > 1 else "asc"
    if key is None or len(parts) > 2 or direction not in ("asc", "desc"):
        raise HttpError(400, problem(400, f"Unsupported $orderby value '{raw}'."))
    return key, direction == "desc"


def page_of(items: list[Any], call: Call) -> list[Any]:
    """The page of ``items`` that ``$skip`` and ``$top`` ask for."""
    skip = int_query_param(call, "$skip", "skip") or 0
    top = int_query_param(call, "$top", "top")
    items = items[skip:]
    return items if top is None else items[:top]
