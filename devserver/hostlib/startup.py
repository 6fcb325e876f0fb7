"""Start-up failures the local host reports in one line: a port already taken, and an app that refuses
to start with a message of its own."""

from __future__ import annotations

import errno
import socket
import traceback
from pathlib import Path


class PortInUse(OSError):
    """The HTTP port is taken by another process."""

    def __init__(self, host: str, port: int) -> None:
        super().__init__(errno.EADDRINUSE, f"port {port} is in use")
        self.host = host
        self.port = port


def bind_socket(host: str, port: int) -> socket.socket:
    """A TCP socket bound to ``host:port`` (0: a free port), not yet listening.

    Raises :class:`PortInUse` when another process holds the port, ``OSError`` for anything else.
    """
    sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM)
    # As uvicorn does: a port left in TIME_WAIT by a previous run may be bound again at once.
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        if exc.errno == errno.EADDRINUSE:
            raise PortInUse(host, port) from None
        raise
    return sock


def port_in_use(host: str, port: int) -> bool:
    """Whether binding ``host:port`` would fail because another process holds it (checked, then freed)."""
    try:
        bind_socket(host, port).close()
    except PortInUse:
        return True
    return False


def refusal_message(exc: BaseException, app_root: Path) -> str | None:
    """The message of an app that refused to start, or None for any other failure to load it.

    An app refuses by raising from the top level of its ``function_app.py`` with a traceback of its own
    making (``raise error.with_traceback(None) from None``): the message then says everything, and the
    frames of the code that found the problem would only bury it. Any other exception (a bug, an import
    that fails) keeps its traceback.
    """
    frames = traceback.extract_tb(exc.__traceback__)
    if not frames or exc.__cause__ is not None or not exc.__suppress_context__:
        return None
    if Path(frames[-1].filename).resolve() != (app_root / "function_app.py").resolve():
        return None
    return str(exc)
