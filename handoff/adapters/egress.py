"""The egress policy: where the broker's outbound HTTP calls may go, and how much they may bring back.

Every client from :mod:`handoff.adapters.http` sends through :class:`EgressTransport` (or its async
twin), which for each request, before any connection is made:

* allows ``https``, and ``http`` only to loopback when the call is made for a registry entry with
  ``allowInsecureLocal`` (the request extension :data:`ALLOW_INSECURE_LOCAL`, or the client default);
* resolves the host (an injectable resolver, ``socket.getaddrinfo`` by default) and refuses the call
  when any address is a cloud metadata address (always), or loopback (unless ``allowInsecureLocal``),
  private, shared (CGNAT), link-local, unspecified, multicast or otherwise not global, unless the
  address lies in a network of ``HANDOFF_EGRESS_ALLOWED_NETWORKS``;
* connects to the address it checked (the URL's host is replaced by it; ``Host`` and the TLS server
  name stay the original name, so certificates are verified as before), so a second DNS answer cannot
  swap in another address between the check and the connection;
* caps the response body at ``HANDOFF_MAX_RESPONSE_BYTES`` while it streams in (decoded size: gzip and
  deflate are decoded here under the cap, other encodings are refused) and stops a body that is still
  arriving when the call's whole time budget is spent.

A refusal is an :class:`EgressError` (an ``httpx.RequestError``), which the one classification in
:mod:`handoff.adapters.http` turns into a permanent, never retried, failure.
"""

from __future__ import annotations

import ipaddress
import socket
import threading
import time
import zlib
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Generic, TypeVar

import httpx

from handoff.domain.net import IPNetwork, parse_networks

if TYPE_CHECKING:
    from handoff.settings import Settings

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
Resolver = Callable[[str, int], Sequence[str]]
TransportT = TypeVar("TransportT", httpx.BaseTransport, httpx.AsyncBaseTransport)

#: Request extension: ``True`` when the call is made for a registry entry with ``allowInsecureLocal``.
ALLOW_INSECURE_LOCAL = "handoff.allow_insecure_local"
DEFAULT_MAX_RESPONSE_BYTES = 4 * 1024 * 1024

#: Instance metadata and platform endpoints: refused whatever HANDOFF_EGRESS_ALLOWED_NETWORKS says.
METADATA_ADDRESSES: frozenset[IPAddress] = frozenset(
    ipaddress.ip_address(address)
    for address in (
        "169.254.169.254",  # IMDS (Azure, AWS, GCP)
        "168.63.129.16",  # Azure WireServer / platform DNS
        "fd00:ec2::254",  # AWS IMDS over IPv6
    )
)

_REFUSED: tuple[tuple[IPNetwork, str], ...] = tuple(
    (ipaddress.ip_network(network), reason)
    for network, reason in (
        ("0.0.0.0/8", "an unspecified address"),
        ("::/128", "an unspecified address"),
        ("10.0.0.0/8", "a private address (RFC 1918)"),
        ("172.16.0.0/12", "a private address (RFC 1918)"),
        ("192.168.0.0/16", "a private address (RFC 1918)"),
        ("fc00::/7", "a private address (unique local, fc00::/7)"),
        ("100.64.0.0/10", "a shared address (carrier-grade NAT, 100.64.0.0/10)"),
        ("169.254.0.0/16", "a link-local address"),
        ("fe80::/10", "a link-local address"),
        ("224.0.0.0/4", "a multicast address"),
        ("ff00::/8", "a multicast address"),
    )
)
_NAT64 = ipaddress.ip_network("64:ff9b::/96")


class EgressError(httpx.RequestError):
    """An outbound call the egress policy refused; never retried."""


def default_resolver(host: str, port: int) -> list[str]:
    """Every address ``host`` resolves to (``socket.getaddrinfo``), in order, without duplicates."""
    found: list[str] = []
    for *_, sockaddr in socket.getaddrinfo(host, port, type=socket.SOCK_STREAM):
        address = str(sockaddr[0])
        if address not in found:
            found.append(address)
    return found


def _literal(host: str) -> IPAddress | None:
    try:
        return ipaddress.ip_address(host)
    except ValueError:
        return None


def _embedded_ipv4(address: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    """The IPv4 address an IPv6 address carries (6to4, NAT64 64:ff9b::/96, Teredo client), if any."""
    if address.sixtofour is not None:
        return address.sixtofour
    if address in _NAT64:
        return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    if address.teredo is not None:
        return address.teredo[1]
    return None


@dataclass(frozen=True)
class EgressPolicy:
    """Which addresses outbound calls may reach and how large an answer may be."""

    allowed_networks: tuple[IPNetwork, ...] = ()
    max_response_bytes: int = DEFAULT_MAX_RESPONSE_BYTES
    resolver: Resolver = default_resolver
    clock: Callable[[], float] = field(default=time.monotonic)

    @classmethod
    def from_settings(cls, settings: Settings, **overrides: Any) -> EgressPolicy:
        """The policy of ``HANDOFF_EGRESS_ALLOWED_NETWORKS`` and ``HANDOFF_MAX_RESPONSE_BYTES``."""
        values: dict[str, Any] = {
            "allowed_networks": parse_networks(settings.egress_allowed_networks),
            "max_response_bytes": settings.max_response_bytes,
        }
        return cls(**{**values, **overrides})

    # ------------------------------------------------------------ addresses

    def refusal(self, address: IPAddress, allow_insecure_local: bool = False) -> str | None:
        """Why a connection to ``address`` is refused, or None when it is allowed."""
        if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
            return self.refusal(address.ipv4_mapped, allow_insecure_local)
        if address in METADATA_ADDRESSES:
            return "a cloud metadata address (never allowed)"
        if any(
            address.version == network.version and address in network for network in self.allowed_networks
        ):
            return None
        if address.is_loopback:
            return None if allow_insecure_local else "a loopback address"
        for network, reason in _REFUSED:
            if address.version == network.version and address in network:
                return reason
        if isinstance(address, ipaddress.IPv6Address):
            embedded = _embedded_ipv4(address)
            if embedded is not None:
                inner = self.refusal(embedded, allow_insecure_local=False)
                if inner is not None:
                    return f"{inner} ({embedded}, carried in an IPv6 address)"
        if address.is_reserved or address.is_multicast or not address.is_global:
            return "a reserved or non-public address"
        return None

    def resolve(self, host: str, port: int) -> list[str]:
        """The addresses to check for ``host``: the literal itself, else what the resolver answers."""
        if _literal(host) is not None:
            return [host]
        return list(self.resolver(host, port))

    # ------------------------------------------------------------ requests

    def check_scheme(self, request: httpx.Request, allow_insecure_local: bool) -> tuple[str, int]:
        """``(host, port)`` of a request whose scheme may be used; :class:`EgressError` otherwise."""
        url = request.url
        host = url.host
        if not host:
            raise EgressError(f"{_where(request)}: the URL has no host", request=request)
        if url.scheme == "https":
            return host, url.port or 443
        if url.scheme == "http" and allow_insecure_local:
            return host, url.port or 80
        hint = " (http only to loopback for entries with allowInsecureLocal)" if url.scheme == "http" else ""
        raise EgressError(f"{_where(request)}: only https is allowed{hint}", request=request)

    def check_addresses(
        self, request: httpx.Request, addresses: Sequence[str], allow_insecure_local: bool
    ) -> str:
        """The address to connect to once every address of the host passed; :class:`EgressError`
        naming the first refused one otherwise."""
        host = request.url.host
        if not addresses:
            raise httpx.ConnectError(f"{_where(request)}: {host} did not resolve", request=request)
        for text in addresses:
            try:
                address = ipaddress.ip_address(text)
            except ValueError:
                raise EgressError(
                    f"{_where(request)}: {host} resolved to {text!r}", request=request
                ) from None
            reason = self.refusal(address, allow_insecure_local)
            if reason is None and request.url.scheme == "http" and not _loopback(address):
                reason = "not loopback, and plain http goes only to loopback"
            if reason is not None:
                named = host if host == text else f"{host} resolves to {text}, which"
                allow = (
                    "" if "never" in reason else "; allow it in HANDOFF_EGRESS_ALLOWED_NETWORKS if intended"
                )
                raise EgressError(f"{_where(request)}: {named} is {reason}{allow}", request=request)
        return addresses[0]

    def allows_insecure_local(self, request: httpx.Request, default: bool) -> bool:
        """The request's ``allowInsecureLocal`` permission (its extension, else the client's default)."""
        return bool(request.extensions.get(ALLOW_INSECURE_LOCAL, default))


def _loopback(address: IPAddress) -> bool:
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped.is_loopback
    return address.is_loopback


def _where(request: httpx.Request) -> str:
    return f"{request.method} {request.url.copy_with(query=None, fragment=None)} refused"


def _pinned(request: httpx.Request, address: str) -> httpx.Request:
    """The request sent to ``address``; ``Host`` and the TLS server name stay the URL's host name."""
    host = request.url.host
    if _literal(host) is not None:
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


# ---------------------------------------------------------------- the response body


class _Meter:
    """Counts (and, for gzip/deflate, decodes) a body as it arrives; raises past the cap or deadline."""

    def __init__(
        self, request: httpx.Request, policy: EgressPolicy, encoding: str, deadline: float | None
    ) -> None:
        self.request = request
        self.limit = policy.max_response_bytes
        self.clock = policy.clock
        self.deadline = deadline
        self.total = 0
        self.decoder = zlib.decompressobj(32 + zlib.MAX_WBITS) if encoding else None

    def feed(self, chunk: bytes) -> bytes:
        if self.deadline is not None and self.clock() > self.deadline:
            raise httpx.ReadTimeout(
                f"{self.request.method} {self.request.url.copy_with(query=None)}: the answer was still "
                "arriving when the call's time ran out",
                request=self.request,
            )
        if self.decoder is not None:
            try:
                chunk = self.decoder.decompress(chunk, self.limit - self.total + 1)
            except zlib.error as exc:
                raise httpx.DecodingError(f"invalid compressed body: {exc}", request=self.request) from None
        return self._count(chunk)

    def flush(self) -> bytes:
        if self.decoder is None:
            return b""
        try:
            return self._count(self.decoder.flush())
        except zlib.error as exc:
            raise httpx.DecodingError(f"invalid compressed body: {exc}", request=self.request) from None

    def _count(self, data: bytes) -> bytes:
        self.total += len(data)
        if self.total > self.limit:
            raise EgressError(too_large(self.request, self.limit), request=self.request)
        return data


def too_large(request: httpx.Request, limit: int) -> str:
    """The reason of a refused answer over the cap."""
    return f"{_where(request)}: response larger than {limit} bytes (HANDOFF_MAX_RESPONSE_BYTES)"


class _SyncBody(httpx.SyncByteStream):
    def __init__(self, response: httpx.Response, meter: _Meter) -> None:
        self.response = response
        self.meter = meter

    def __iter__(self) -> Iterator[bytes]:
        for chunk in self.response.stream:  # type: ignore[union-attr]  # a sync transport's stream is sync
            data = self.meter.feed(chunk)
            if data:
                yield data
        tail = self.meter.flush()
        if tail:
            yield tail

    def close(self) -> None:
        self.response.close()


class _AsyncBody(httpx.AsyncByteStream):
    def __init__(self, response: httpx.Response, meter: _Meter) -> None:
        self.response = response
        self.meter = meter

    async def __aiter__(self) -> AsyncIterator[bytes]:
        async for chunk in self.response.stream:  # type: ignore[union-attr]  # an async transport's is async
            data = self.meter.feed(chunk)
            if data:
                yield data
        tail = self.meter.flush()
        if tail:
            yield tail

    async def aclose(self) -> None:
        await self.response.aclose()


def _body_plan(request: httpx.Request, response: httpx.Response, limit: int) -> tuple[str | None, str]:
    """``(refusal or None, encoding to decode)`` from the answer's headers, before its body is read."""
    encoding = response.headers.get("content-encoding", "").strip().lower()
    if encoding in ("", "identity"):
        encoding = ""
    elif encoding not in ("gzip", "x-gzip", "deflate"):
        return f"{_where(request)}: unsupported Content-Encoding {encoding!r}", encoding
    length = response.headers.get("content-length", "")
    if length.isdigit() and int(length) > limit:
        return too_large(request, limit), encoding
    return None, encoding


def _headers_after_decoding(response: httpx.Response, encoding: str) -> httpx.Headers:
    headers = httpx.Headers(response.headers)
    if encoding:
        # The body handed on is decoded here, so its encoding and length no longer apply.
        for name in ("content-encoding", "content-length"):
            if name in headers:
                del headers[name]
    return headers


# ---------------------------------------------------------------- transports


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
        refusal, encoding = _body_plan(request, response, self.policy.max_response_bytes)
        if refusal is not None:
            response.close()
            raise EgressError(refusal, request=request)
        deadline = started + self.total_timeout if self.total_timeout is not None else None
        return httpx.Response(
            response.status_code,
            headers=_headers_after_decoding(response, encoding),
            stream=_SyncBody(response, _Meter(request, self.policy, encoding, deadline)),
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
        refusal, encoding = _body_plan(request, response, self.policy.max_response_bytes)
        if refusal is not None:
            await response.aclose()
            raise EgressError(refusal, request=request)
        deadline = started + self.total_timeout if self.total_timeout is not None else None
        return httpx.Response(
            response.status_code,
            headers=_headers_after_decoding(response, encoding),
            stream=_AsyncBody(response, _Meter(request, self.policy, encoding, deadline)),
            extensions=response.extensions,
        )

    async def aclose(self) -> None:
        """Close every inner transport."""
        for transport in self._pool.take_all():
            await transport.aclose()
