"""Refuses every network connection of the Python process it is loaded into, and records each attempt.

tests/infra/test_checkov.py puts this directory on PYTHONPATH when it runs checkov, so the interpreter
imports this module at start-up (``site`` imports ``sitecustomize``). Name resolution through the socket
module and connections to anything but loopback or a local socket raise ``OSError`` before a packet is sent,
and each attempt is appended to the file named by ``OFFLINE_GUARD_LOG``, so the test sees any external call
the scan tries through Python. It guards the socket module, not the process: a C library that resolves
names or connects on its own (c-ares, for one) would pass unseen.
"""

from __future__ import annotations

import ipaddress
import os
import socket
from typing import Any

_LOG = os.environ.get("OFFLINE_GUARD_LOG", "")
_LOOPBACK_NAMES = frozenset({"localhost", "localhost.localdomain", "ip6-localhost"})


def _record(what: str) -> None:
    if _LOG:
        with open(_LOG, "a", encoding="utf-8") as log:
            log.write(f"{what}\n")


def _is_loopback(host: object) -> bool:
    if isinstance(host, bytes):
        host = host.decode(errors="replace")
    if not isinstance(host, str):
        return False
    if host.lower() in _LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host.split("%", 1)[0]).is_loopback
    except ValueError:
        return False


def _refuse(what: str) -> OSError:
    _record(what)
    return OSError(f"network access refused while scanning offline: {what}")


_getaddrinfo = socket.getaddrinfo


def _guarded_getaddrinfo(host: Any, *args: Any, **kwargs: Any) -> Any:
    if host is None or _is_loopback(host):
        return _getaddrinfo(host, *args, **kwargs)
    raise _refuse(f"resolve {host!r}")


_gethostbyname = socket.gethostbyname
_gethostbyname_ex = socket.gethostbyname_ex


def _guarded_gethostbyname(host: str) -> str:
    if _is_loopback(host):
        return _gethostbyname(host)
    raise _refuse(f"resolve {host!r}")


def _guarded_gethostbyname_ex(host: str) -> Any:
    if _is_loopback(host):
        return _gethostbyname_ex(host)
    raise _refuse(f"resolve {host!r}")


def _guard_address(sock: socket.socket, address: Any) -> None:
    if sock.family in (socket.AF_INET, socket.AF_INET6) and not _is_loopback(address[0]):
        raise _refuse(f"connect {address!r}")


_connect = socket.socket.connect
_connect_ex = socket.socket.connect_ex


def _guarded_connect(self: socket.socket, address: Any) -> None:
    _guard_address(self, address)
    return _connect(self, address)


def _guarded_connect_ex(self: socket.socket, address: Any) -> int:
    _guard_address(self, address)
    return _connect_ex(self, address)


socket.getaddrinfo = _guarded_getaddrinfo
socket.gethostbyname = _guarded_gethostbyname
socket.gethostbyname_ex = _guarded_gethostbyname_ex
socket.socket.connect = _guarded_connect  # type: ignore[method-assign]
socket.socket.connect_ex = _guarded_connect_ex  # type: ignore[method-assign]
