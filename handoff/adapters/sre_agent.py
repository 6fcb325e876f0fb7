"""Azure SRE Agent data-plane client: threads, messages and HTTP triggers, with managed identity.

Facts and contradictions it is built for (docs/architecture.md): the token audience is documented as
``https://azuresre.dev`` but Microsoft's own client uses the app ID ``59f0a04a-…``, so a 401 retries
once with the agent's fallback scope; lists come back as ``{"value": [...]}`` or a bare array; paging
parameters are spelled with and without ``$``.

Looking for what an earlier attempt already wrote (a thread, a message with a marker line) pages
through the list newest first (``$top``/``$skip``, both spellings for messages) until it is found, the
list ends, or the items are older than the earlier attempt allows; a server that ignores the order is
noticed and then read to the end. There is a cap on pages: past it the answer is unknown, and that is a
permanent failure rather than a guess (a guess could post twice).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, TypeVar

import httpx

from handoff.adapters.http import classify, insecure_local, monotonic, safe_url, transport_error
from handoff.adapters.token_cache import TokenCache
from handoff.domain.messages import is_handoff_thread, is_marked
from handoff.domain.models import PATH_SEGMENT_MESSAGE, is_path_segment_id
from handoff.domain.net import is_loopback
from handoff.domain.records import AgentCallError
from handoff.domain.registry import AgentConfig, check_agent_url
from handoff.settings import Settings

if TYPE_CHECKING:
    from azure.core.credentials import TokenCredential

ARM_API_VERSION = "2025-05-01-preview"
ARM_SCOPE = "https://management.azure.com/.default"
SERVICE_USER_ID = "handoff-broker"
SERVICE_DISPLAY_NAME = "Handoff Broker"
RECENT = 50
# Pages of RECENT items a search reads at most (2,000 threads or messages).
SEARCH_PAGES = 40
ENDPOINT_TTL_SECONDS = 3600.0
T = TypeVar("T")


def agent_url(base: str, *segments: str, query: dict[str, str] | None = None) -> str:
    """The URL of an agent call: ``base`` plus each segment percent-encoded as one path segment
    (:func:`handoff.adapters.http.safe_url`). A segment that cannot be one is a permanent failure."""
    try:
        return safe_url(base, *segments, query=query)
    except ValueError as exc:
        raise AgentCallError(f"cannot build an agent URL: {exc}", transient=False) from None


def checked_thread_id(value: object, where: str) -> str:
    """A thread id an agent answered with, once it passes the same rule as ids callers send."""
    if not is_path_segment_id(value):
        shown = repr(value)[:80]
        raise AgentCallError(
            f"{where} answered with an unusable thread id {shown}: {PATH_SEGMENT_MESSAGE}", transient=False
        )
    return str(value)


def _items(data: object) -> list[dict[str, Any]]:
    if isinstance(data, dict):
        data = data.get("value", data.get("items", []))
    return [item for item in data if isinstance(item, dict)] if isinstance(data, list) else []


def parse_time(value: object) -> datetime | None:
    """An ISO 8601 timestamp an agent answered with (``Z`` or an offset; naive means UTC), else None."""
    if not isinstance(value, str) or not value:
        return None
    text = value.strip()
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def _message_time(message: dict[str, Any]) -> datetime | None:
    return parse_time(message.get("timeStamp") or message.get("timestamp"))


def _thread_time(thread: dict[str, Any]) -> datetime | None:
    return parse_time(thread.get("createdTimestamp"))


def search_pages(
    pages: Iterator[list[dict[str, Any]]],
    match: Callable[[dict[str, Any]], T | None],
    stamp: Callable[[dict[str, Any]], datetime | None],
    since: datetime | None,
    what: str,
) -> T | None:
    """Look for an item through ``pages`` of a list asked for newest first, ``RECENT`` at a time.

    The answer is None once it is certain: the list ended (a short page), or, while every item so far
    came newest first, a page's oldest item is older than ``since``. A server that ignores the order
    (an item newer than the one before it) is read to the end instead; one that ignores ``$skip``
    (a page with nothing new) cannot be read further. Past :data:`SEARCH_PAGES` pages, or when the list
    cannot be read further, the answer is unknown: a permanent :class:`AgentCallError`.
    """
    seen: set[str] = set()
    newest_first = True
    previous: datetime | None = None
    for number, items in enumerate(pages):
        for item in items:
            found = match(item)
            if found is not None:
                return found
        if len(items) < RECENT:
            return None  # the list ended
        keys = {str(item.get("id")) if item.get("id") is not None else repr(item) for item in items}
        if keys <= seen:
            raise AgentCallError(
                f"{what}: the server answered the same page again (it ignores $skip), so the older "
                f"items cannot be read",
                transient=False,
            )
        seen |= keys
        times = [stamp(item) for item in items]
        for moment in times:
            if moment is None or (previous is not None and moment > previous):
                newest_first = False  # unknown or rising times: no stopping early
            previous = moment if moment is not None else previous
        oldest = times[-1]
        if since is not None and newest_first and oldest is not None and oldest < since:
            return None  # everything further is older still, from before the first attempt
        if number + 1 >= SEARCH_PAGES:
            break
    raise AgentCallError(
        f"{what}: not found in the newest {SEARCH_PAGES * RECENT} items and older ones cannot be ruled "
        f"out, so posting again could duplicate it",
        transient=False,
    )


class SreAgentGateway:
    """Implements :class:`handoff.domain.records.AgentGateway` over the SRE Agent REST API."""

    def __init__(self, settings: Settings, credential: TokenCredential, client: httpx.Client) -> None:
        self.settings = settings
        self.credential = credential
        # One pooled client for every agent and ARM (httpx keeps a connection pool per host); tokens are
        # kept per scope until shortly before they expire.
        self.client = client
        self.tokens = TokenCache(credential)
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
        arm = self.settings.arm_endpoint
        url = agent_url(
            arm, *(agent.resource_id or "").strip("/").split("/"), query={"api-version": ARM_API_VERSION}
        )
        token = self._token(ARM_SCOPE)
        try:
            response = self.client.get(
                url,
                headers={"Authorization": f"Bearer {token}"},
                # The ARM endpoint is a setting: plain http only when it names a loopback fake.
                extensions=insecure_local(is_loopback(httpx.URL(arm).host)),
            )
        except httpx.HTTPError as exc:
            raise transport_error("GET", url, exc) from None
        if response.status_code != 200:
            raise classify("GET", url, response)
        properties = response.json().get("properties", {})
        endpoint = properties.get("agentEndpoint") or properties.get("endpoint") or properties.get("fqdn")
        if not endpoint or not isinstance(endpoint, str):
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

    def _token(self, scope: str) -> str:
        """A managed-identity token (kept until shortly before it expires); the token endpoint failing
        is a transient failure of the step (retried through the queue and audited), never an
        unclassified crash."""
        try:
            return self.tokens.get(scope)
        except Exception as exc:
            status = getattr(getattr(exc, "response", None), "status_code", None)
            answered = f" (answered {status})" if isinstance(status, int) else ""
            raise AgentCallError(
                f"token request for {scope} failed: {type(exc).__name__}{answered}", transient=True
            ) from None

    def _request(self, agent: AgentConfig, method: str, url: str, json: object = None) -> httpx.Response:
        """The call with a token of the scope that worked last for the agent; a 401 tries the agent's
        fallback scope once (the documented audience and the app ID disagree, see above)."""
        scope = self._scopes.get(agent.name, agent.token_scope)
        response = self._send(agent, scope, method, url, json)
        fallback = agent.fallback_token_scope
        if response.status_code == 401:
            self.tokens.forget(scope)  # refused: never offer that token again
        if response.status_code == 401 and fallback and fallback != scope:
            scope = fallback
            response = self._send(agent, scope, method, url, json)
            if response.status_code == 401:
                self.tokens.forget(scope)
        if response.status_code != 401:
            self._scopes[agent.name] = scope
        if response.status_code >= 300:
            raise classify(method, url, response)
        return response

    def _send(self, agent: AgentConfig, scope: str, method: str, url: str, json: object) -> httpx.Response:
        token = self._token(scope)
        headers = {"Authorization": f"Bearer {token}", "Accept": "application/json"}
        try:
            return self.client.request(
                method,
                url,
                headers=headers,
                extensions=insecure_local(agent.allow_insecure_local),
                json=json,
            )
        except httpx.HTTPError as exc:
            raise transport_error(method, url, exc) from None

    # ---------------------------------------------------------------- AgentGateway

    def create_thread(self, agent: AgentConfig, text: str) -> str:
        """``POST /api/v1/threads`` with a start message; returns the new thread's ``id``."""
        url = agent_url(self.endpoint(agent), "api", "v1", "threads")
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
        return checked_thread_id(thread_id, f"POST {url}")

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
        execution = data.get("execution")
        thread_id = data.get("threadId") or (
            execution.get("threadId") if isinstance(execution, dict) else None
        )
        return checked_thread_id(thread_id, f"POST {agent.name}'s trigger") if thread_id else None

    def find_thread(self, agent: AgentConfig, needle: str, since: datetime | None = None) -> str | None:
        """Newest-first search of the agent's threads for the one the broker opened for handoff
        ``needle``: its start message (or trigger prompt) begins with the handoff's header and, for a
        start message, ends with its marker (:func:`handoff.domain.messages.is_handoff_thread`). Pages back to
        threads created before ``since`` (:func:`search_pages`)."""
        trigger = getattr(agent.delivery, "trigger_url", None) is not None

        def pages() -> Iterator[list[dict[str, Any]]]:
            for page in range(SEARCH_PAGES):
                params = {"$orderby": "createdTimestamp desc", "$top": str(RECENT)}
                if page:
                    params.update({"$skip": str(page * RECENT), "skip": str(page * RECENT)})
                url = agent_url(self.endpoint(agent), "api", "v1", "threads", query=params)
                yield _items(self._request(agent, "GET", url).json())

        def match(thread: dict[str, Any]) -> str | None:
            start = thread.get("startMessage") or {}
            text = start.get("text") if isinstance(start, dict) else start
            if is_handoff_thread(needle, thread.get("title"), text, trigger=trigger):
                return checked_thread_id(thread.get("id"), f"GET {agent.name}'s threads")
            return None

        return search_pages(pages(), match, _thread_time, since, f"GET {agent.name}'s threads")

    def post_message(self, agent: AgentConfig, thread_id: str, text: str) -> str | None:
        """``POST /api/v1/threads/{id}/messages``; the new message's ``id`` when the answer has one."""
        url = agent_url(self.endpoint(agent), "api", "v1", "threads", thread_id, "messages")
        body = {"text": text, "userId": SERVICE_USER_ID, "displayName": SERVICE_DISPLAY_NAME}
        response = self._request(agent, "POST", url, json=body)
        try:
            data = response.json()
        except ValueError:
            return None
        message_id = data.get("id") if isinstance(data, dict) else None
        return message_id[:200] if isinstance(message_id, str) and message_id.isprintable() else None

    def find_message(
        self, agent: AgentConfig, thread_id: str, needle: str, since: datetime | None = None
    ) -> dict[str, Any] | None:
        """The broker's message with marker line ``needle`` (its last line, under the handoff's header:
        :func:`handoff.domain.messages.is_marked`), searched newest first back to messages older than
        ``since`` (:func:`search_pages`)."""

        def match(message: dict[str, Any]) -> dict[str, Any] | None:
            return message if is_marked(str(message.get("text") or ""), needle) else None

        pages = (self._message_page(agent, thread_id, page) for page in range(SEARCH_PAGES))
        return search_pages(pages, match, _message_time, since, f"GET {agent.name}'s thread messages")

    def has_message(
        self, agent: AgentConfig, thread_id: str, needle: str, since: datetime | None = None
    ) -> bool:
        """Whether :meth:`find_message` finds the broker's message with marker line ``needle``."""
        return self.find_message(agent, thread_id, needle, since) is not None

    def get_thread(self, agent: AgentConfig, thread_id: str) -> dict[str, Any]:
        """``GET /api/v1/threads/{id}``: the thread object with ``lastMessage`` (how Microsoft's client
        decides whether the agent's reply is complete)."""
        url = agent_url(self.endpoint(agent), "api", "v1", "threads", thread_id)
        data = self._request(agent, "GET", url).json()
        if not isinstance(data, dict):
            raise AgentCallError(f"GET {url} answered without a thread object", transient=True)
        return data

    def _message_page(self, agent: AgentConfig, thread_id: str, page: int) -> list[dict[str, Any]]:
        """One page of the thread's messages, asked for newest first."""
        # Both spellings are seen in the wild; servers ignore the one they do not know.
        params = {
            "$top": str(RECENT),
            "$orderby": "timeStamp desc",
            "top": str(RECENT),
            "orderby": "timestamp desc",
        }
        if page:
            params.update({"$skip": str(page * RECENT), "skip": str(page * RECENT)})
        url = agent_url(self.endpoint(agent), "api", "v1", "threads", thread_id, "messages", query=params)
        return _items(self._request(agent, "GET", url).json())

    def list_messages(self, agent: AgentConfig, thread_id: str) -> list[dict[str, Any]]:
        """The thread's most recent messages (up to 50), oldest first."""
        messages = self._message_page(agent, thread_id, 0)
        # Newest first was asked for so the window holds the latest; servers that ignore the order
        # answer oldest first. Sort by timestamp either way (ISO 8601 strings sort in time order).
        return sorted(messages, key=lambda m: str(m.get("timeStamp") or m.get("timestamp") or ""))
