"""The egress decision: which schemes and addresses a request may reach, and why one is refused.

Refused: a cloud metadata address, always, whether literal or carried in an IPv6 address (mapped, 6to4,
NAT64 64:ff9b::/96, Teredo client), even inside an allowed network; loopback (unless
``allowInsecureLocal``), private, shared (CGNAT), link-local, unspecified, multicast or otherwise not
global addresses, unless the address lies in a network of ``HANDOFF_EGRESS_ALLOWED_NETWORKS``; an IPv6
address is judged by the IPv4 address it carries (mapped, 6to4, NAT64, Teredo) too.
"""

from __future__ import annotations

import ipaddress
import socket
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import httpx

from handoff.domain.net import IPNetwork, parse_networks

if TYPE_CHECKING:
    from handoff.settings import Settings

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
Resolver = Callable[[str, int], Sequence[str]]

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


def ip_literal(host: str) -> IPAddress | None:
    """The address ``host`` is when it is an IP literal, else None (a name to resolve)."""
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
        # Before the allow-list: a network allowed for its IPv6 reach (64:ff9b::/96 behind NAT64, 2002::/16)
        # still never carries the caller to a metadata address inside it.
        embedded = _embedded_ipv4(address) if isinstance(address, ipaddress.IPv6Address) else None
        if embedded is not None and embedded in METADATA_ADDRESSES:
            return f"a cloud metadata address (never allowed) ({embedded}, carried in an IPv6 address)"
        if any(
            address.version == network.version and address in network for network in self.allowed_networks
        ):
            return None
        if address.is_loopback:
            return None if allow_insecure_local else "a loopback address"
        for network, reason in _REFUSED:
            if address.version == network.version and address in network:
                return reason
        if embedded is not None:
            inner = self.refusal(embedded, allow_insecure_local=False)
            if inner is not None:
                return f"{inner} ({embedded}, carried in an IPv6 address)"
        if address.is_reserved or address.is_multicast or not address.is_global:
            return "a reserved or non-public address"
        return None

    def resolve(self, host: str, port: int) -> list[str]:
        """The addresses to check for ``host``: the literal itself, else what the resolver answers."""
        if ip_literal(host) is not None:
            return [host]
        return list(self.resolver(host, port))

    # ------------------------------------------------------------ requests

    def check_scheme(self, request: httpx.Request, allow_insecure_local: bool) -> tuple[str, int]:
        """``(host, port)`` of a request whose scheme may be used; :class:`EgressError` otherwise."""
        url = request.url
        host = url.host
        if not host:
            raise EgressError(f"{refused(request)}: the URL has no host", request=request)
        if url.scheme == "https":
            return host, url.port or 443
        if url.scheme == "http" and allow_insecure_local:
            return host, url.port or 80
        hint = " (http only to loopback for entries with allowInsecureLocal)" if url.scheme == "http" else ""
        raise EgressError(f"{refused(request)}: only https is allowed{hint}", request=request)

    def check_addresses(
        self, request: httpx.Request, addresses: Sequence[str], allow_insecure_local: bool
    ) -> str:
        """The address to connect to once every address of the host passed; :class:`EgressError`
        naming the first refused one otherwise."""
        host = request.url.host
        if not addresses:
            raise httpx.ConnectError(f"{refused(request)}: {host} did not resolve", request=request)
        for text in addresses:
            try:
                address = ipaddress.ip_address(text)
            except ValueError:
                raise EgressError(
                    f"{refused(request)}: {host} resolved to {text!r}", request=request
                ) from None
            reason = self.refusal(address, allow_insecure_local)
            if reason is None and request.url.scheme == "http" and not _loopback(address):
                reason = "not loopback, and plain http goes only to loopback"
            if reason is not None:
                named = host if host == text else f"{host} resolves to {text}, which"
                allow = (
                    "" if "never" in reason else "; allow it in HANDOFF_EGRESS_ALLOWED_NETWORKS if intended"
                )
                raise EgressError(f"{refused(request)}: {named} is {reason}{allow}", request=request)
        return addresses[0]

    def allows_insecure_local(self, request: httpx.Request, default: bool) -> bool:
        """The request's ``allowInsecureLocal`` permission (its extension, else the client's default)."""
        return bool(request.extensions.get(ALLOW_INSECURE_LOCAL, default))


def _loopback(address: IPAddress) -> bool:
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped.is_loopback
    return address.is_loopback


def refused(request: httpx.Request) -> str:
    """How a refusal names the call: ``GET <url without query> refused``."""
    return f"{request.method} {request.url.copy_with(query=None, fragment=None)} refused"
