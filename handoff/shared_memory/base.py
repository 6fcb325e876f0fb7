"""The one small interface every shared-memory writer implements, and what writers share: the job,
errors, the context (HTTP client, secrets, coordination state) and the reading of rate-limit answers.

Adding a backend: a module with a ``Writer`` class and a ``make_writer`` entry in
:mod:`handoff.shared_memory.writers`, plus its config model in :mod:`handoff.shared_memory.config`.
"""

from __future__ import annotations

import base64
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Protocol

import httpx

from handoff.adapters.http import (
    classify,
    describe,
    insecure_local,
    retry_after_seconds,
    safe_url,
    transport_error,
)
from handoff.records import HandoffRecord
from handoff.redaction import redact
from handoff.settings import Settings
from handoff.shared_memory.content import Note


class WriteError(Exception):
    """A write did not happen (or may not have).

    ``transient``: retry later; ``retry_after``: the backend said how long to wait; ``backend_wide``:
    the backend is rate-limiting us, so every write to it waits; ``deferral``: nothing failed, the write
    just has to wait for its turn (spacing), so it is not an attempt; ``skip``: the write must not
    happen at all (e.g. PagerDuty's note cap), which is a warning, not a failure.
    """

    def __init__(
        self,
        reason: str,
        *,
        transient: bool,
        retry_after: float | None = None,
        backend_wide: bool = False,
        deferral: bool = False,
        skip: bool = False,
        status: int | None = None,
    ) -> None:
        reason = redact(reason)  # it is stored with the write's state and audited
        super().__init__(reason)
        self.reason = reason
        self.transient = transient
        self.retry_after = retry_after
        self.backend_wide = backend_wide
        self.deferral = deferral
        self.skip = skip
        self.status = status


@dataclass(frozen=True)
class WriteJob:
    """One write: a lifecycle point of a handoff, for one backend."""

    record: HandoffRecord
    point: str
    seq: int
    backend: Any
    note: Note
    details: dict[str, Any]
    first_at: datetime
    root_title: str = ""
    root_summary: str = ""


@dataclass(frozen=True)
class Destination:
    """Where a write goes; ``label`` is secret-free and goes into the audit."""

    label: str
    data: dict[str, Any] = field(default_factory=dict)


class CoordinationState(Protocol):
    """Coordination through storage (never process memory), so several broker instances agree."""

    def reserve_slot(self, key: str, spacing: float, hourly_limit: int, now: datetime) -> float:
        """Take the next content-write slot for ``key``: 0 when taken, else seconds to wait."""

    def claim_chain(self, key: str, now: datetime, lease_seconds: float) -> tuple[str, int | None, bool]:
        """Who opens the chain's issue: ``("created", number, _)``, ``("busy", None, _)`` or
        ``("claimed", None, stale)`` where ``stale`` means an earlier claimant may have opened it."""

    def set_chain(self, key: str, number: int) -> None:
        """Record the chain's issue number."""

    def abandon_chain(self, key: str) -> None:
        """Drop a claim before anything was sent."""

    def release_chain(self, key: str) -> None:
        """Give up a claim whose creation may or may not have happened (the next claimant probes)."""

    def get_hint(self, key: str) -> int:
        """The highest issue number seen in a repository (0 when unknown)."""

    def set_hint(self, key: str, number: int) -> None:
        """Raise the repository's highest seen issue number."""


@dataclass
class WriterContext:
    """What writers get besides the job."""

    http: httpx.Client
    settings: Settings
    state: CoordinationState
    clock: Callable[[], datetime]
    environ: Any = field(default_factory=lambda: os.environ)

    def secret(self, setting: str) -> str:
        """The credential in app setting ``setting``, read at use time (Key Vault references are
        resolved into app settings by the platform). The value never leaves the writer."""
        value = self.environ.get(setting)
        if not value:
            raise WriteError(f"app setting {setting} (secretSetting) is not set", transient=False)
        return str(value)


class Writer(Protocol):
    """The one interface of a shared-memory backend."""

    def destination(self, job: WriteJob) -> Destination | None:
        """Where this write goes, or None when the handoff has nothing here to write to (skipped)."""

    def find(self, dest: Destination, job: WriteJob) -> str | None:
        """On a retry: the URL/id of an earlier write carrying ``job.note.marker``, if any."""

    def write(self, dest: Destination, job: WriteJob) -> str:
        """Append the note; returns a URL or id of what was written."""


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
