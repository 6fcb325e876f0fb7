"""Azure SRE Agent data-plane client: threads, messages and HTTP triggers, with managed identity.

Facts and contradictions it is built for (docs/architecture.md): the token audience is documented as
``https://azuresre.dev`` but Microsoft's own client uses the app ID ``59f0a04a-…``, so a 401 retries
once with the agent's fallback scope; lists come back as ``{"value": [...]}`` or a bare array; paging
parameters are spelled with and without ``$``.
"""

from __future__ import annotations

import threading
from typing import Any

import httpx

from handoff.adapters.http import classify, monotonic, transport_error
from handoff.messages import is_handoff_thread, is_marked
from handoff.records import AgentCallError
from handoff.registry import AgentConfig, check_agent_url
from handoff.settings import Settings

ARM_API_VERSION = "2025-05-01-preview"
ARM_SCOPE = "https://management.azure.com/.default"
SERVICE_USER_ID = "handoff-broker"
SERVICE_DISPLAY_NAME = "Handoff Broker"
RECENT = 50
ENDPOINT_TTL_SECONDS = 3600.0


def _items(data: Any) -> list[dict[str, Any]]:
    if isinstance(data, dict):
        data = data.get("value", data.get("items", []))
    return [item for item in data if isinstance(item, dict)] if isinstance(data, list) else []


class SreAgentGateway:
    """Implements :class:`handoff.records.AgentGateway` over the SRE Agent REST API."""

    def __init__(self, settings: Settings, credential: Any, client: httpx.Client) -> None:
        self.settings = settings
        self.credential = credential
        self.client = client
        self._endpoints: dict[str, tuple[str, float]] = {}
        self._scopes: dict[str, str] = {}
        self._lock = threading.Lock()

    # ---------------------------------------------------------------- endpoint and tokens

    def endpoint(self, agent: AgentConfig) -> str:
        """The agent's data-plane base URL: from the registry, else from ARM (cached for an hour)."""
        if agent.endpoint:
            return agent.endpoint.rstrip("/")
        with self._lock:
            cached = self._endpoints.get(agent.name)
        if cached and cached[1] > monotonic():
            return cached[0]
        url = f"{self.settings.arm_endpoint.rstrip('/')}{agent.resource_id}"
        token = self.credential.get_token(ARM_SCOPE).token
        try:
            response = self.client.get(
                url, params={"api-version": ARM_API_VERSION}, headers={"Authorization": f"Bearer {token}"}
            )
        except httpx.HTTPError as exc:
            raise transport_error("GET", url, exc) from None
        if response.status_code != 200:
            raise classify("GET", url, response)
        properties = response.json().get("properties", {})
        endpoint = properties.get("agentEndpoint") or properties.get("endpoint") or properties.get("fqdn")
        if not endpoint:
            raise AgentCallError(
                f"ARM resource {agent.resource_id} has no properties.agentEndpoint", transient=False
            )
        if "://" not in endpoint:
            endpoint = f"https://{endpoint}"
        try:
            check_agent_url(endpoint, agent.allow_insecure_local, "agentEndpoint")
        except ValueError as exc:
            raise AgentCallError(str(exc), transient=False) from None
        endpoint = endpoint.rstrip("/")
        with self._lock:
            self._endpoints[agent.name] = (endpoint, monotonic() + ENDPOINT_TTL_SECONDS)
        return endpoint

    def _request(self, agent: AgentConfig, method: str, url: str, **kwargs: Any) -> httpx.Response:
        scopes = [self._scopes.get(agent.name, agent.token_scope)]
        if agent.fallback_token_scope and agent.fallback_token_scope not in scopes:
            scopes.append(agent.fallback_token_scope)
        response = None
        for scope in scopes:
            token = self.credential.get_token(scope).token
            headers = {"Authorization": f"Bearer {token}", "Accept": "application/json"}
            try:
                response = self.client.request(method, url, headers=headers, **kwargs)
            except httpx.HTTPError as exc:
                raise transport_error(method, url, exc) from None
            if response.status_code != 401:
                self._scopes[agent.name] = scope
                break
        assert response is not None
        if response.status_code >= 300:
            raise classify(method, url, response)
        return response

    # ---------------------------------------------------------------- AgentGateway

    def create_thread(self, agent: AgentConfig, text: str) -> str:
        """``POST /api/v1/threads`` with a start message; returns the new thread's ``id``."""
        url = f"{self.endpoint(agent)}/api/v1/threads"
        body = {
            "startMessage": {
                "text": text,
                "userId": SERVICE_USER_ID,
                "displayName": SERVICE_DISPLAY_NAME,
                "agent": agent.resource_name,
            }
        }
        data = self._request(agent, "POST", url, json=body).json()
        thread_id = data.get("id") if isinstance(data, dict) else None
        if not thread_id:
            raise AgentCallError(f"POST {url} answered without a thread id", transient=False)
        return str(thread_id)

    def fire_trigger(self, agent: AgentConfig, payload: dict[str, Any]) -> str | None:
        """``POST {triggerUrl}``; the thread id is at the top level or under ``execution``."""
        trigger_url = getattr(agent.delivery, "trigger_url", None)
        if not trigger_url:
            raise AgentCallError(f"agent {agent.name} has no triggerUrl", transient=False)
        response = self._request(agent, "POST", trigger_url, json=payload)
        try:
            data = response.json()
        except ValueError:
            return None
        if not isinstance(data, dict):
            return None
        thread_id = data.get("threadId") or (data.get("execution") or {}).get("threadId")
        return str(thread_id) if thread_id else None

    def find_thread(self, agent: AgentConfig, needle: str) -> str | None:
        """Newest-first scan of the agent's recent threads for the one the broker opened for handoff
        ``needle``: its start message (or trigger prompt) begins with the handoff's header and, for a
        start message, ends with its marker (:func:`handoff.messages.is_handoff_thread`)."""
        url = f"{self.endpoint(agent)}/api/v1/threads"
        params = {"$orderby": "createdTimestamp desc", "$top": str(RECENT)}
        trigger = getattr(agent.delivery, "trigger_url", None) is not None
        for thread in _items(self._request(agent, "GET", url, params=params).json()):
            start = thread.get("startMessage") or {}
            text = start.get("text") if isinstance(start, dict) else start
            if is_handoff_thread(needle, thread.get("title"), text, trigger=trigger):
                return str(thread.get("id"))
        return None

    def post_message(self, agent: AgentConfig, thread_id: str, text: str) -> None:
        """``POST /api/v1/threads/{id}/messages``."""
        url = f"{self.endpoint(agent)}/api/v1/threads/{thread_id}/messages"
        body = {"text": text, "userId": SERVICE_USER_ID, "displayName": SERVICE_DISPLAY_NAME}
        self._request(agent, "POST", url, json=body)

    def has_message(self, agent: AgentConfig, thread_id: str, needle: str) -> bool:
        """Whether one of the thread's recent messages is the broker's message with marker line
        ``needle``: its last line, under the handoff's header (:func:`handoff.messages.is_marked`)."""
        return any(
            is_marked(str(message.get("text") or ""), needle)
            for message in self.list_messages(agent, thread_id)
        )

    def get_thread(self, agent: AgentConfig, thread_id: str) -> dict[str, Any]:
        """``GET /api/v1/threads/{id}``: the thread object with ``lastMessage`` (how Microsoft's client
        decides whether the agent's reply is complete)."""
        url = f"{self.endpoint(agent)}/api/v1/threads/{thread_id}"
        data = self._request(agent, "GET", url).json()
        if not isinstance(data, dict):
            raise AgentCallError(f"GET {url} answered without a thread object", transient=True)
        return data

    def list_messages(self, agent: AgentConfig, thread_id: str) -> list[dict[str, Any]]:
        """The thread's most recent messages (up to 50), oldest first."""
        url = f"{self.endpoint(agent)}/api/v1/threads/{thread_id}/messages"
        # Both spellings are seen in the wild; servers ignore the one they do not know.
        params = {
            "$top": str(RECENT),
            "$orderby": "timeStamp desc",
            "top": str(RECENT),
            "orderby": "timestamp desc",
        }
        messages = _items(self._request(agent, "GET", url, params=params).json())
        # Newest first was asked for so the window holds the latest; servers that ignore the order
        # answer oldest first. Sort by timestamp either way (ISO 8601 strings sort in time order).
        return sorted(messages, key=lambda m: str(m.get("timeStamp") or m.get("timestamp") or ""))
