"""The one HTTP client factory, the one URL builder and the one way to classify an outside system's
answer."""

from __future__ import annotations

import email.utils
import time
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote, urlsplit

import httpx

from handoff.adapters import telemetry
from handoff.adapters.egress import (
    ALLOW_INSECURE_LOCAL,
    AsyncEgressTransport,
    EgressError,
    EgressPolicy,
    EgressTransport,
)
from handoff.domain.records import AgentCallError
from handoff.domain.redaction import redact

USER_AGENT = "handoff-broker/0.1"
# Far above any URL the broker needs (ids are at most 256 characters), far below what servers accept.
MAX_URL_LENGTH = 8192
# Connections kept per storage host: the function threads (32 and more) share one pool.
STORAGE_POOL_CONNECTIONS = 64


def make_http_client(
    timeout_seconds: float, policy: EgressPolicy | None = None, *, allow_insecure_local: bool = False
) -> httpx.Client:
    """A pooled client for calls to agents, ARM and other services (no automatic retries: the
    delivery queue retries, so a function never sleeps).

    Every request goes through the egress policy (:mod:`handoff.adapters.egress`): https only, no
    private, link-local, metadata or loopback addresses, the answer capped in size, no redirects
    followed. ``allow_insecure_local`` is the default for the client's requests; a request can carry
    its own with ``extensions=insecure_local(...)``. ``policy`` defaults to the app settings' one.
    """
    transport = EgressTransport(
        policy or default_policy(), allow_insecure_local=allow_insecure_local, total_timeout=timeout_seconds
    )
    return httpx.Client(transport=TracedTransport(transport), **_client_options(timeout_seconds))


def make_storage_transport(*, connection_timeout: float, read_timeout: float) -> Any:
    """The ``transport`` the Table and Queue clients of one :class:`StorageClients` share: one
    connection pool for all of them, with these timeouts (seconds) on every request.

    Storage endpoints come from the app settings, never from a caller, so these requests are not
    under the egress policy. requests looks up ``~/.netrc`` on every request without an ``auth`` of
    its own (file-system checks on each storage call, visible in the CPU profile under load); storage
    requests are signed by the SDK's policy, so a pass-through ``auth`` turns that lookup off, and no
    netrc credential can reach storage. Proxy and CA-bundle settings from the environment still apply,
    read once per storage host (:func:`_storage_session`).
    """
    # Imported here: the storage SDKs load requests anyway, and only when their clients are built.
    from http.cookiejar import DefaultCookiePolicy

    import requests
    from azure.core.pipeline.transport import RequestsTransport
    from urllib3.util.retry import Retry

    session = _storage_session()
    session.auth = _pass_through
    # Storage sets no cookies; none an answer might carry is kept or sent back.
    session.cookies.set_policy(DefaultCookiePolicy(allowed_domains=[]))
    # As azure-core sets up sessions of its own: the pipeline retries and redirects, not urllib3.
    adapter = requests.adapters.HTTPAdapter(
        pool_maxsize=STORAGE_POOL_CONNECTIONS,
        max_retries=Retry(total=False, redirect=False, raise_on_status=False),
    )
    session.mount("http://", adapter)
    session.mount("https://", adapter)
    # Not the owner: closing one client must not close the session the others use.
    return RequestsTransport(
        session=session,
        session_owner=False,
        connection_timeout=connection_timeout,
        read_timeout=read_timeout,
    )


def _storage_session() -> Any:
    """A ``requests.Session`` that reads the environment's proxies and CA bundle for a host once.

    requests reads them on every request (``merge_environment_settings``: every environment variable
    scanned for proxies and ``NO_PROXY``), some 4 % of the broker's CPU under load. The environment of a
    Functions worker does not change while it runs (new app settings restart it), so the answer for a
    storage host is kept; with the same precedence as requests': the request's own proxies first."""
    import os

    import requests
    from requests.sessions import merge_setting
    from requests.utils import get_environ_proxies

    class StorageSession(requests.Session):
        def __init__(self) -> None:
            super().__init__()
            self.environment: dict[str, tuple[dict[str, str], str | None]] = {}

        def merge_environment_settings(
            self, url: Any, proxies: Any, stream: Any, verify: Any, cert: Any
        ) -> dict[str, Any]:
            if not self.trust_env or (proxies and proxies.get("no_proxy") is not None):
                return super().merge_environment_settings(url, proxies, stream, verify, cert)
            parts = urlsplit(url)
            host = f"{parts.scheme}://{parts.netloc}"
            found = self.environment.get(host)
            if found is None:
                bundle = os.environ.get("REQUESTS_CA_BUNDLE") or os.environ.get("CURL_CA_BUNDLE")
                found = self.environment[host] = (get_environ_proxies(url), bundle)
            environ_proxies, bundle = found
            merged = {**environ_proxies, **(proxies or {})}
            if (verify is True or verify is None) and bundle:
                verify = bundle
            return {
                "proxies": merge_setting(merged, self.proxies),
                "stream": merge_setting(stream, self.stream),
                "verify": merge_setting(verify, self.verify),
                "cert": merge_setting(cert, self.cert),
            }

    return StorageSession()


def _pass_through(request: Any) -> Any:
    """A requests ``auth`` that adds nothing (requests then skips its ``~/.netrc`` lookup)."""
    return request


def _client_options(timeout_seconds: float, headers: dict[str, str] | None = None) -> dict[str, Any]:
    return {
        "timeout": httpx.Timeout(timeout_seconds, connect=min(10.0, timeout_seconds)),
        # identity: the size cap counts what arrives (gzip and deflate are still decoded under the cap).
        "headers": {"User-Agent": USER_AGENT, "Accept-Encoding": "identity", **(headers or {})},
        "follow_redirects": False,
        # No proxies or .netrc from the environment: the egress policy must see the real destination.
        "trust_env": False,
    }


def make_async_http_client(
    timeout_seconds: float,
    headers: dict[str, str] | None = None,
    policy: EgressPolicy | None = None,
    *,
    allow_insecure_local: bool = False,
) -> httpx.AsyncClient:
    """The async twin of :func:`make_http_client` (same policy, timeouts, no redirects, same
    User-Agent), for SDKs that only take an ``httpx.AsyncClient`` (the A2A client). One per call: an
    async client belongs to the event loop it was created on."""
    transport = AsyncEgressTransport(
        policy or default_policy(), allow_insecure_local=allow_insecure_local, total_timeout=timeout_seconds
    )
    return httpx.AsyncClient(
        transport=AsyncTracedTransport(transport), **_client_options(timeout_seconds, headers)
    )


def _client_span_attributes(request: httpx.Request) -> dict[str, str | int]:
    """What a client span records of a request: method, scheme, host and port (no path, no query)."""
    url = request.url
    return {
        "http.request.method": request.method,
        "url.scheme": url.scheme,
        "server.address": url.host,
        "server.port": url.port or (443 if url.scheme == "https" else 80),
    }


class TracedTransport(httpx.BaseTransport):
    """Every call in a client span, with the W3C trace context (``traceparent``) sent along, so the
    agent or peer called continues the broker's trace; a pass-through while telemetry is off."""

    def __init__(self, inner: httpx.BaseTransport) -> None:
        self.inner = inner

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        if not telemetry.enabled():
            return self.inner.handle_request(request)
        with telemetry.span(request.method, _client_span_attributes(request), kind="client") as current:
            telemetry.inject(request.headers)
            response = self.inner.handle_request(request)
            _record_status(current, response.status_code)
            return response

    def close(self) -> None:
        self.inner.close()


class AsyncTracedTransport(httpx.AsyncBaseTransport):
    """The async twin of :class:`TracedTransport` (the A2A client)."""

    def __init__(self, inner: httpx.AsyncBaseTransport) -> None:
        self.inner = inner

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        if not telemetry.enabled():
            return await self.inner.handle_async_request(request)
        with telemetry.span(request.method, _client_span_attributes(request), kind="client") as current:
            telemetry.inject(request.headers)
            response = await self.inner.handle_async_request(request)
            _record_status(current, response.status_code)
            return response

    async def aclose(self) -> None:
        await self.inner.aclose()


def _record_status(current: telemetry.Span, status: int) -> None:
    current.set({"http.response.status_code": status})
    if status >= 400:
        current.fail(str(status))


def default_policy() -> EgressPolicy:
    """The egress policy of the app settings."""
    from handoff.settings import get_settings

    return EgressPolicy.from_settings(get_settings())


def insecure_local(allowed: bool) -> dict[str, Any]:
    """Request ``extensions`` saying whether the call is made for a registry entry (or a setting) that
    allows plain http to loopback (``allowInsecureLocal``)."""
    return {ALLOW_INSECURE_LOCAL: bool(allowed)}


def safe_url(base: str, *segments: str, query: Mapping[str, str] | None = None) -> str:
    """``base`` followed by each of ``segments`` as exactly one percent-encoded path segment.

    The one way the broker puts ids into an outside system's URL: ``/``, ``?``, ``#``, ``%``, spaces
    and control characters in a segment are encoded (``quote(segment, safe="")``), so a segment can
    never add a path level, a query or a fragment. Segments that URL normalisation would resolve away
    (empty, ``.``, ``..``) are refused with ``ValueError``, as are a base that is not an absolute
    http(s) URL or that carries a query or fragment, and a URL longer than :data:`MAX_URL_LENGTH`.
    ``query`` is encoded as httpx encodes ``params``.
    """
    parts = urlsplit(base)
    if parts.scheme not in ("http", "https") or not parts.netloc or parts.query or parts.fragment:
        raise ValueError(f"base URL must be an absolute http(s) URL without query or fragment, got {base!r}")
    encoded = []
    for segment in segments:
        if not isinstance(segment, str) or segment in ("", ".", ".."):
            raise ValueError(f"{segment!r} cannot be a URL path segment")
        encoded.append(quote(segment, safe=""))
    url = base.rstrip("/") + "".join(f"/{segment}" for segment in encoded)
    if len(url) > MAX_URL_LENGTH:
        raise ValueError(f"the URL would be longer than {MAX_URL_LENGTH} characters")
    return str(httpx.URL(url, params=dict(query))) if query else url


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
    """Timeouts and connection failures are transient; a call the egress policy refused (a forbidden
    address or scheme, an answer over the size cap) is not, and says why."""
    if isinstance(exc, EgressError):
        return AgentCallError(str(exc), transient=False)
    path = httpx.URL(url).copy_with(query=None)
    return AgentCallError(f"{method} {path} failed: {type(exc).__name__}", transient=True)


def monotonic() -> float:
    """Seconds from a monotonic clock (for caches)."""
    return time.monotonic()
