"""The egress transports: every request is checked against the policy, resolved, pinned to the address
that was checked, then sent by an inner transport; its answer's body is capped while it is read.

Pinning replaces the URL's host by the checked address (``Host`` and the TLS server name stay the
original name, so certificates are verified as before), so a second DNS answer cannot swap in another
address between the check and the connection.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Generic, TypeVar

import httpx

from handoff.adapters.egress.body import AsyncBody, BodyMeter, SyncBody, body_plan, headers_after_decoding
from handoff.adapters.egress.policy import EgressError, EgressPolicy, ip_literal

TransportT = TypeVar("TransportT", httpx.BaseTransport, httpx.AsyncBaseTransport)


def _pinned(request: httpx.Request, address: str) -> httpx.Request:
    """The request sent to ``address``; ``Host`` and the TLS server name stay the URL's host name."""
    host = request.url.host
    if ip_literal(host) is not None:
        return request
    extensions = dict(request.extensions)
    if request.url.scheme == "https":
        extensions["sni_hostname"] = host
    return httpx.Request(
        request.method,
        request.url.copy_with(host=address),
        headers=request.headers,
        stream=request.stream,
        extensions=extensions,
    )


class _Pool(Generic[TransportT]):
    """One inner transport per origin (so a connection is never reused for another host name)."""

    def __init__(self, factory: Callable[[], TransportT]) -> None:
        self.factory: Callable[[], TransportT] = factory
        self.transports: dict[tuple[str, str, int | None], TransportT] = {}
        self.lock = threading.Lock()

    def get(self, url: httpx.URL) -> TransportT:
        key = (url.scheme, url.host, url.port)
        with self.lock:
            transport = self.transports.get(key)
            if transport is None:
                transport = self.transports[key] = self.factory()
            return transport

    def take_all(self) -> list[TransportT]:
        with self.lock:
            transports = list(self.transports.values())
            self.transports.clear()
        return transports


class EgressTransport(httpx.BaseTransport):
    """Checks every request against an :class:`EgressPolicy`, then sends it with an inner transport."""

    def __init__(
        self,
        policy: EgressPolicy,
        *,
        allow_insecure_local: bool = False,
        total_timeout: float | None = None,
        inner: Callable[[], httpx.BaseTransport] | None = None,
    ) -> None:
        self.policy = policy
        self.allow_insecure_local = allow_insecure_local
        self.total_timeout = total_timeout
        self._pool: _Pool[httpx.BaseTransport] = _Pool(inner or httpx.HTTPTransport)

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        """Check, resolve, pin, send; the answer's body is capped while it is read."""
        started = self.policy.clock()
        allow = self.policy.allows_insecure_local(request, self.allow_insecure_local)
        host, port = self.policy.check_scheme(request, allow)
        try:
            addresses = self.policy.resolve(host, port)
        except OSError as exc:
            raise httpx.ConnectError(f"cannot resolve {host}: {exc}", request=request) from None
        address = self.policy.check_addresses(request, addresses, allow)
        response = self._pool.get(request.url).handle_request(_pinned(request, address))
        refusal, encoding = body_plan(request, response, self.policy.max_response_bytes)
        if refusal is not None:
            response.close()
            raise EgressError(refusal, request=request)
        deadline = started + self.total_timeout if self.total_timeout is not None else None
        return httpx.Response(
            response.status_code,
            headers=headers_after_decoding(response, encoding),
            stream=SyncBody(response, BodyMeter(request, self.policy, encoding, deadline)),
            extensions=response.extensions,
        )

    def close(self) -> None:
        """Close every inner transport."""
        for transport in self._pool.take_all():
            transport.close()


class AsyncEgressTransport(httpx.AsyncBaseTransport):
    """The async twin of :class:`EgressTransport` (resolution runs in a worker thread)."""

    def __init__(
        self,
        policy: EgressPolicy,
        *,
        allow_insecure_local: bool = False,
        total_timeout: float | None = None,
        inner: Callable[[], httpx.AsyncBaseTransport] | None = None,
    ) -> None:
        self.policy = policy
        self.allow_insecure_local = allow_insecure_local
        self.total_timeout = total_timeout
        self._pool: _Pool[httpx.AsyncBaseTransport] = _Pool(inner or httpx.AsyncHTTPTransport)

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        """Check, resolve, pin, send; the answer's body is capped while it is read."""
        import anyio.to_thread

        started = self.policy.clock()
        allow = self.policy.allows_insecure_local(request, self.allow_insecure_local)
        host, port = self.policy.check_scheme(request, allow)
        try:
            addresses = await anyio.to_thread.run_sync(self.policy.resolve, host, port)
        except OSError as exc:
            raise httpx.ConnectError(f"cannot resolve {host}: {exc}", request=request) from None
        address = self.policy.check_addresses(request, addresses, allow)
        response = await self._pool.get(request.url).handle_async_request(_pinned(request, address))
        refusal, encoding = body_plan(request, response, self.policy.max_response_bytes)
        if refusal is not None:
            await response.aclose()
            raise EgressError(refusal, request=request)
        deadline = started + self.total_timeout if self.total_timeout is not None else None
        return httpx.Response(
            response.status_code,
            headers=headers_after_decoding(response, encoding),
            stream=AsyncBody(response, BodyMeter(request, self.policy, encoding, deadline)),
            extensions=response.extensions,
        )

    async def aclose(self) -> None:
        """Close every inner transport."""
        for transport in self._pool.take_all():
            await transport.aclose()
