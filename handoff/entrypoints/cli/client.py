"""The broker's REST API over HTTP, as the command line uses it: one client, two kinds of failure.

The command line is a client of the broker like any other: it knows the API's paths and JSON, nothing of
the broker's code. :class:`BrokerError` is an answer the broker gave (problem details when it sent them);
:class:`Unreachable` means no answer came (refused connection, DNS, timeout, TLS).
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from enum import IntEnum
from typing import Any
from urllib.parse import quote

import httpx

DEFAULT_URL = "http://127.0.0.1:7071"
FUNCTION_KEY_HEADER = "x-functions-key"
AGENT_KEY_HEADER = "X-Handoff-Agent-Key"
IDEMPOTENCY_KEY_HEADER = "Idempotency-Key"
MAX_PAGES = 100  # pages one command follows before it stops and says so


class ExitCode(IntEnum):
    """What the ``handoff`` command exits with."""

    OK = 0
    FAILED = 1  # not found, refused by the broker, or the handoff failed
    USAGE = 2  # Click's own code for a bad option or argument
    UNREACHABLE = 3  # no answer from the broker


class BrokerError(Exception):
    """The broker answered with an error status."""

    def __init__(self, status: int, body: Any, reason: str, method: str, path: str) -> None:
        super().__init__(f"{method} {path}: {status} {reason}")
        self.status = status
        self.body = body
        self.reason = reason
        self.method = method
        self.path = path

    @property
    def problem(self) -> dict[str, Any] | None:
        """The RFC 9457 problem details, when the answer carried them."""
        body = self.body
        return body if isinstance(body, dict) and "title" in body and "status" in body else None

    def lines(self) -> list[str]:
        """``title: detail``, then one ``  field: message`` line per field error."""
        problem = self.problem
        if problem is None:
            text = self.body if isinstance(self.body, str) else json.dumps(self.body)
            return [f"{self.status} {self.reason}" + (f": {text.strip()[:500]}" if text.strip() else "")]
        lines = [f"{problem.get('title')}: {problem.get('detail')}"]
        for error in problem.get("errors") or []:
            if isinstance(error, dict):
                lines.append(f"  {error.get('field')}: {error.get('message')}")
        return lines


class Unreachable(Exception):
    """No answer from the broker."""

    def __init__(self, url: str, reason: str) -> None:
        super().__init__(f"cannot reach the broker at {url}: {reason}")
        self.url = url


def base_url(url: str) -> str:
    """The broker's root URL: without a trailing slash or ``/api`` (both are accepted)."""
    url = url.strip().rstrip("/")
    return url[: -len("/api")] if url.endswith("/api") else url


def segment(value: str) -> str:
    """``value`` as one URL path segment (so an id cannot add path segments or a query)."""
    return quote(value, safe="")


class BrokerClient:
    """Calls to one broker with the caller's credentials."""

    def __init__(
        self,
        url: str,
        headers: Mapping[str, str] | None = None,
        *,
        timeout: float = 30.0,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.url = base_url(url)
        self.http = httpx.Client(
            base_url=self.url,
            headers={"User-Agent": "handoff-cli", **(headers or {})},
            timeout=timeout,
            transport=transport,
        )

    def close(self) -> None:
        """Close the connections."""
        self.http.close()

    def request(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, str | int] | None = None,
        body: Any = None,
        headers: Mapping[str, str] | None = None,
    ) -> httpx.Response:
        """One call; :class:`BrokerError` for a 4xx/5xx answer, :class:`Unreachable` for none."""
        clean = {key: value for key, value in (params or {}).items() if value not in (None, "")}
        try:
            response = self.http.request(method, path, params=clean, json=body, headers=dict(headers or {}))
        except httpx.TransportError as exc:
            raise Unreachable(self.url, str(exc) or type(exc).__name__) from exc
        if response.status_code >= 400:
            raise BrokerError(response.status_code, _body(response), response.reason_phrase, method, path)
        return response

    def get(self, path: str, params: Mapping[str, str | int] | None = None) -> Any:
        """``GET`` and the JSON answer."""
        return _body(self.request("GET", path, params=params))

    def post(self, path: str, body: Any = None, headers: Mapping[str, str] | None = None) -> tuple[int, Any]:
        """``POST`` a JSON body; the status and the JSON answer."""
        response = self.request("POST", path, body=body, headers=headers)
        return response.status_code, _body(response)

    def text(self, path: str, params: Mapping[str, str | int] | None = None) -> str:
        """``GET`` and the answer as text."""
        return self.request("GET", path, params=params).text

    def pages(self, path: str, params: Mapping[str, str | int], key: str) -> Iterator[dict[str, Any]]:
        """Every page of a paged answer (``continuationToken``), up to :data:`MAX_PAGES`."""
        query = dict(params)
        for _ in range(MAX_PAGES):
            page = self.get(path, query)
            yield page
            token = page.get("continuationToken") if isinstance(page, dict) else None
            if not token or not page.get(key):
                return
            query["continuationToken"] = token

    # ------------------------------------------------------------------ the API's resources

    def handoff(self, handoff_id: str) -> dict[str, Any]:
        """``GET /api/handoffs/{id}``."""
        return dict(self.get(f"/api/handoffs/{segment(handoff_id)}"))

    def audit(self, handoff_id: str) -> list[dict[str, Any]]:
        """Every audit event of a handoff, oldest first (all pages)."""
        path = f"/api/handoffs/{segment(handoff_id)}/audit"
        return [event for page in self.pages(path, {}, "events") for event in page.get("events", [])]

    def audit_after(self, handoff_id: str, seq: int) -> dict[str, Any]:
        """The page of audit events after sequence number ``seq``."""
        params = {"continuationToken": str(seq)} if seq else {}
        return dict(self.get(f"/api/handoffs/{segment(handoff_id)}/audit", params))

    def thread_links(self, agent: str, thread_id: str) -> dict[str, Any]:
        """The threads linked to one: by path for a name, by query for a resource ID (it has slashes)."""
        if "/" in agent:
            return dict(self.get("/api/links", {"agent": agent, "threadId": thread_id}))
        return dict(self.get(f"/api/threads/{segment(agent)}/{segment(thread_id)}/links"))


def _body(response: httpx.Response) -> Any:
    """The answer's JSON, or its text when it is not JSON."""
    content_type = response.headers.get("content-type", "")
    if "json" in content_type:
        try:
            return response.json()
        except ValueError:
            return response.text
    return response.text
