"""Small network helpers shared by the registry's URL rules, the settings and the egress policy."""

from __future__ import annotations

import ipaddress

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network


def is_loopback(host: str) -> bool:
    """Whether ``host`` (a name or an IP address) is this machine's loopback."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def parse_networks(value: str | None) -> tuple[IPNetwork, ...]:
    """Comma-separated CIDRs (``10.20.0.0/16, fd12:3456::/48``); ``ValueError`` naming a bad one."""
    networks = []
    for part in (value or "").split(","):
        text = part.strip()
        if not text:
            continue
        try:
            networks.append(ipaddress.ip_network(text, strict=True))
        except ValueError as exc:
            raise ValueError(f"{text!r} is not a network in CIDR notation ({exc})") from None
    return tuple(networks)
