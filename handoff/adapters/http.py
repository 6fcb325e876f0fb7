"""The one HTTP client factory and the one way to classify an outside system's answer."""

from __future__ import annotations

import email.utils
import time
from datetime import UTC, datetime
from typing import Any

import httpx

from handoff.records import AgentCallError
from handoff.redaction import redact

USER_AGENT = "handoff-broker/0.1"


def make_http_client(timeout_seconds: float) -> httpx.Client:
    """A pooled client for calls to agents, ARM and other services (no automatic retries: the
    delivery queue retries, so a function never sleeps)."""
    return httpx.Client(**_client_options(timeout_seconds))


def _client_options(timeout_seconds: float, headers: dict[str, str] | None = None) -> dict[str, Any]:
    return {
        "timeout": httpx.Timeout(timeout_seconds, connect=min(10.0, timeout_seconds)),
        "headers": {"User-Agent": USER_AGENT, **(headers or {})},
        "follow_redirects": False,
    }


def make_async_http_client(
    timeout_seconds: float, headers: dict[str, str] | None = None
) -> httpx.AsyncClient:
    """The async twin of :func:`make_http_client` (same timeouts, no redirects, same User-Agent), for
    SDKs that only take an ``httpx.AsyncClient`` (the A2A client). One per call: an async client
    belongs to the event loop it was created on."""
    return httpx.AsyncClient(**_client_options(timeout_seconds, headers))


def retry_after_seconds(response: httpx.Response) -> float | None:
    """``Retry-After`` as seconds (delta-seconds or an HTTP date), or None."""
    value = response.headers.get("Retry-After")
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - datetime.now(UTC)).total_seconds())


def describe(method: str, url: str, response: httpx.Response) -> str:
    """A short, secret-free description of a failed call (no headers, first 200 chars of the body)."""
    path = httpx.URL(url).copy_with(query=None)
    snippet = " ".join(redact(response.text[:2000]).split())[:200] if response.content else ""
    return f"{method} {path} answered {response.status_code}" + (f": {snippet}" if snippet else "")


def classify(method: str, url: str, response: httpx.Response) -> AgentCallError:
    """The error for a non-success answer: 429, 408 and 5xx are transient, other 4xx are not."""
    status = response.status_code
    transient = status in (408, 429) or status >= 500
    return AgentCallError(
        describe(method, url, response),
        transient=transient,
        status=status,
        retry_after=retry_after_seconds(response) if transient else None,
    )


def transport_error(method: str, url: str, exc: httpx.HTTPError) -> AgentCallError:
    """Timeouts and connection failures are transient."""
    path = httpx.URL(url).copy_with(query=None)
    return AgentCallError(f"{method} {path} failed: {type(exc).__name__}", transient=True)


def monotonic() -> float:
    """Seconds from a monotonic clock (for caches)."""
    return time.monotonic()
