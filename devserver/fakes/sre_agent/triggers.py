"""Data-plane endpoints of the simulated SRE Agent for HTTP triggers: the webhook and its management."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from starlette.responses import JSONResponse, Response

from devserver.fakes._service import Call, HttpError, problem
from devserver.fakes.sre_agent.data_plane import validation_error
from devserver.fakes.sre_agent.state import Trigger, json_field
from devserver.fakes.sre_agent.store import AgentStore

if TYPE_CHECKING:
    from devserver.fakes.sre_agent.agent import FakeSreAgent

# (JSON field, Trigger attribute, required) of a trigger's create or update body.
_TRIGGER_FIELDS = (
    ("name", "name", True),
    ("agentPrompt", "prompt", True),
    ("agent", "agent", False),
    ("description", "description", False),
    ("agentMode", "agent_mode", False),
)


class TriggerRoutes:
    """``/api/v1/httptriggers`` of one agent."""

    def __init__(self, agent: FakeSreAgent) -> None:
        """Handlers for ``agent``'s triggers; :meth:`register` adds them to its routes."""
        self.agent = agent

    @property
    def store(self) -> AgentStore:
        """The agent's state (guard every use with the agent's lock)."""
        return self.agent.store

    def register(self) -> None:
        """Add the endpoints to the agent, in the order they are matched."""
        route = self.agent.route
        # The docs disagree on whether the webhook needs a token; the agent's setting decides.
        route(
            "POST",
            "/api/v1/httptriggers/trigger/{trigger_id}",
            self.fire,
            auth=self.agent.trigger_requires_auth,
        )
        route("GET", "/api/v1/httptriggers", self.list_triggers)
        route("POST", "/api/v1/httptriggers/create", self.create_trigger)
        route("GET", "/api/v1/httptriggers/{trigger_id}", self.get_trigger)
        route("PUT", "/api/v1/httptriggers/{trigger_id}", self.update_trigger)
        route("DELETE", "/api/v1/httptriggers/{trigger_id}", self.delete_trigger)
        route("POST", "/api/v1/httptriggers/{trigger_id}/enable", self.enable_trigger)
        route("POST", "/api/v1/httptriggers/{trigger_id}/disable", self.disable_trigger)
        route("POST", "/api/v1/httptriggers/{trigger_id}/execute", self.execute_trigger)
        route("GET", "/api/v1/httptriggers/{trigger_id}/executions", self.list_executions)

    async def fire(self, call: Call) -> Response:
        """The webhook: start a thread from the trigger's prompt and the JSON payload (``202``)."""
        payload = call.json(required=False)
        with self.agent.lock:
            trigger = trigger_or_404(self.store, call.params["trigger_id"], enabled_only=True)
            execution = self.store.run_trigger(trigger, payload, (call.claims or {}).get("oid"))
            form = trigger.response_form or self.agent.trigger_response
        summary = {key: execution[key] for key in ("executionTime", "threadId", "success")}
        if form == "nested":
            return JSONResponse(
                {"message": "HTTP trigger execution initiated successfully", "execution": summary}, 202
            )
        return JSONResponse({"message": "HTTP trigger execution initiated", **summary}, 202)

    async def execute_trigger(self, call: Call) -> Response:
        """``POST .../{id}/execute``: like the webhook, always answered in the nested form."""
        payload = call.json(required=False)
        with self.agent.lock:
            trigger = trigger_or_404(self.store, call.params["trigger_id"], enabled_only=True)
            execution = self.store.run_trigger(trigger, payload or None, (call.claims or {}).get("oid"))
        summary = {key: execution[key] for key in ("executionTime", "threadId", "success")}
        return JSONResponse(
            {"message": "HTTP trigger execution initiated successfully", "execution": summary}, 202
        )

    async def list_triggers(self, call: Call) -> Response:
        """``GET /api/v1/httptriggers``: a bare JSON array, as the service answers."""
        base = self.agent.url_or_none()
        with self.agent.lock:
            return JSONResponse([trigger.to_json(base) for trigger in self.store.triggers.values()])

    async def create_trigger(self, call: Call) -> Response:
        """``POST /api/v1/httptriggers/create``."""
        fields = trigger_fields(call.json())
        trigger_id = self.agent.add_trigger(
            fields.pop("name"), fields.pop("prompt"), agent=fields.pop("agent", None)
        )
        with self.agent.lock:
            trigger = self.store.triggers[trigger_id]
            for attr, value in fields.items():
                setattr(trigger, attr, value)
            url = trigger.to_json(self.agent.url_or_none())["triggerUrl"]
        return JSONResponse(
            {"triggerId": trigger_id, "triggerUrl": url, "message": "HTTP trigger created successfully"}
        )

    async def get_trigger(self, call: Call) -> Response:
        """``GET /api/v1/httptriggers/{id}``."""
        base = self.agent.url_or_none()
        with self.agent.lock:
            return JSONResponse(trigger_or_404(self.store, call.params["trigger_id"]).to_json(base))

    async def update_trigger(self, call: Call) -> Response:
        """``PUT /api/v1/httptriggers/{id}``."""
        fields = trigger_fields(call.json())
        base = self.agent.url_or_none()
        with self.agent.lock:
            trigger = trigger_or_404(self.store, call.params["trigger_id"])
            for attr, value in fields.items():
                setattr(trigger, attr, value)
            return JSONResponse(trigger.to_json(base))

    async def delete_trigger(self, call: Call) -> Response:
        """``DELETE /api/v1/httptriggers/{id}``."""
        with self.agent.lock:
            trigger = trigger_or_404(self.store, call.params["trigger_id"])
            del self.store.triggers[trigger.id]
        return Response(status_code=204)

    async def enable_trigger(self, call: Call) -> Response:
        """``POST .../{id}/enable``."""
        return self._set_enabled(call, True)

    async def disable_trigger(self, call: Call) -> Response:
        """``POST .../{id}/disable`` (the webhook then answers 404)."""
        return self._set_enabled(call, False)

    def _set_enabled(self, call: Call, enabled: bool) -> Response:
        base = self.agent.url_or_none()
        with self.agent.lock:
            trigger = trigger_or_404(self.store, call.params["trigger_id"])
            trigger.enabled = enabled
            return JSONResponse(trigger.to_json(base))

    async def list_executions(self, call: Call) -> Response:
        """``GET .../{id}/executions``."""
        with self.agent.lock:
            trigger = trigger_or_404(self.store, call.params["trigger_id"])
            return JSONResponse({"value": json.loads(json.dumps(trigger.executions))})


def trigger_or_404(store: AgentStore, trigger_id: str, *, enabled_only: bool = False) -> Trigger:
    """The trigger, or the service's ``404`` for an unknown (or, with ``enabled_only``, disabled) one."""
    trigger = store.find_trigger(trigger_id)
    if trigger is None or (enabled_only and not trigger.enabled):
        raise HttpError(404, problem(404, f"HTTP trigger '{trigger_id}' was not found or is disabled."))
    return trigger


def trigger_fields(data: Any) -> dict[str, Any]:
    """Trigger attributes from a create or update body (``400`` for a missing or non-string field)."""
    if not isinstance(data, dict):
        raise HttpError(400, problem(400, "The request body must be a JSON object."))
    errors: dict[str, list[str]] = {}
    fields: dict[str, Any] = {}
    for key, attr, required in _TRIGGER_FIELDS:
        present, value = json_field(data, key)
        if present and value is not None and not isinstance(value, str):
            errors[key] = [f"The {key} field must be a string."]
        elif required and not value:
            errors[key] = [f"The {key} field is required."]
        elif present and value is not None:
            fields[attr] = value
    if errors:
        raise validation_error(errors)
    return fields
