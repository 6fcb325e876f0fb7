"""The one small interface every shared-memory writer implements, and what writers share: the job,
errors, the context (HTTP client, secrets, coordination state) and the reading of rate-limit answers.

Adding a backend: a module with a ``Writer`` class and a ``make_writer`` entry in
:mod:`handoff.adapters.vendor_writers`, plus its config model in :mod:`handoff.domain.shared_memory.config`.
Only the composition root builds writers; the use cases reach them through the ``Writers`` port.
"""

from __future__ import annotations

import base64
import os
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import httpx

from handoff.adapters.http import (
    classify,
    describe,
    insecure_local,
    retry_after_seconds,
    safe_url,
    transport_error,
)
from handoff.domain.shared_memory.writes import WriteError
from handoff.ports import CoordinationState
from handoff.settings import Settings


@dataclass
class WriterContext:
    """What writers get besides the job."""

    http: httpx.Client
    settings: Settings
    state: CoordinationState
    clock: Callable[[], datetime]
    environ: Mapping[str, str] = field(default_factory=lambda: os.environ)

    def secret(self, setting: str) -> str:
        """The credential in app setting ``setting``, read at use time (Key Vault references are
        resolved into app settings by the platform). The value never leaves the writer."""
        value = self.environ.get(setting)
        if not value:
            raise WriteError(f"app setting {setting} (secretSetting) is not set", transient=False)
        return str(value)


def vendor_url(base: str, *segments: str | int) -> str:
    """``base`` plus each segment as one percent-encoded path segment (ids from handoffs and from
    vendor answers never add path levels, queries or fragments); a segment that cannot be one is a
    permanent failure."""
    try:
        return safe_url(base, *(str(segment) for segment in segments))
    except ValueError as exc:
        raise WriteError(f"cannot build the URL: {exc}", transient=False) from None


def request(
    http: httpx.Client,
    method: str,
    url: str,
    *,
    expect: tuple[int, ...] = (200, 201),
    allow_insecure_local: bool = False,
    **kwargs: Any,
) -> httpx.Response:
    """Send one request; a non-expected answer raises :class:`WriteError` with rate limits read.
    ``allow_insecure_local``: the backend's ``allowInsecureLocal`` (plain http to loopback)."""
    try:
        response = http.request(method, url, extensions=insecure_local(allow_insecure_local), **kwargs)
    except httpx.HTTPError as exc:
        error = transport_error(method, url, exc)
        raise WriteError(error.reason, transient=error.transient) from None
    if response.status_code in expect:
        return response
    raise error_for(method, url, response)


def error_for(method: str, url: str, response: httpx.Response) -> WriteError:
    """Classify a vendor answer (one place for all backends).

    429, and 403 carrying a rate-limit signal (GitHub's primary limit with ``x-ratelimit-remaining: 0``
    or its secondary limits, which say so in the message), hold every write to the backend until the
    time the vendor names: ``Retry-After``, else ``x-ratelimit-reset`` (epoch seconds on GitHub and
    ServiceNow, an ISO time on Jira) or ``ratelimit-reset`` (seconds, PagerDuty); a secondary limit
    without either waits a minute, as GitHub asks.
    """
    base = classify(method, url, response)
    status = response.status_code
    limited = status == 429 or (status == 403 and _rate_limited_403(response))
    if not limited:
        return WriteError(base.reason, transient=base.transient, retry_after=base.retry_after, status=status)
    wait = rate_limit_wait(response)
    if wait is None:
        wait = 60.0
    return WriteError(
        describe(method, url, response), transient=True, retry_after=wait, backend_wide=True, status=status
    )


def _rate_limited_403(response: httpx.Response) -> bool:
    if response.headers.get("x-ratelimit-remaining") == "0":
        return True
    return "rate limit" in response.text[:2000].lower()


def rate_limit_wait(response: httpx.Response) -> float | None:
    """Seconds to wait before the next request, from the vendor's rate-limit headers, or None."""
    retry_after = retry_after_seconds(response)
    if retry_after is not None:
        return retry_after
    reset = response.headers.get("x-ratelimit-reset")
    if reset:
        seconds = _reset_seconds(reset)
        if seconds is not None:
            return seconds
    relative = response.headers.get("ratelimit-reset")
    if relative:
        try:
            return max(0.0, float(relative))
        except ValueError:
            return None
    return None


def _reset_seconds(value: str) -> float | None:
    try:
        number = float(value)
    except ValueError:
        number = None
    if number is not None:
        # Epoch seconds (GitHub, ServiceNow); small numbers are already relative.
        return max(0.0, number - time.time()) if number > 1e9 else max(0.0, number)
    try:
        when = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - datetime.now(UTC)).total_seconds())


def basic_or_bearer(secret: str) -> str:
    """``user:password`` (or ``email:api-token``) becomes HTTP Basic; anything else a bearer token."""
    if ":" in secret:
        return "Basic " + base64.b64encode(secret.encode()).decode()
    return f"Bearer {secret}"


def json_api_headers(secret: str) -> dict[str, str]:
    """Headers of a plain JSON REST API (Jira, ServiceNow) authenticated with :func:`basic_or_bearer`."""
    return {
        "Authorization": basic_or_bearer(secret),
        "Accept": "application/json",
        "Content-Type": "application/json",
    }
