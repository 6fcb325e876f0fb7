"""Run an ASGI app with uvicorn in a background thread on 127.0.0.1 (used by the simulated services)."""

from __future__ import annotations

import threading
import time
from types import TracebackType
from typing import Any, Self

import uvicorn


class ServerThread:
    """An ASGI app served by uvicorn on a daemon thread.

    ``ServerThread(app).start()`` binds 127.0.0.1 on a free port chosen by the OS (no race between
    picking and binding), waits until uvicorn accepts connections and returns the object; ``.url`` is
    then ``http://127.0.0.1:<port>``. ``.stop()`` shuts the server down. Also a context manager.
    """

    def __init__(
        self,
        app: Any,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        name: str | None = None,
        log_level: str = "warning",
    ) -> None:
        self.app = app
        self.host = host
        self.name = name or type(app).__name__
        config = uvicorn.Config(
            app,
            host=host,
            port=port,
            log_level=log_level,
            lifespan="off",
            access_log=False,
            timeout_graceful_shutdown=1,
        )
        self._server = uvicorn.Server(config)
        self._thread: threading.Thread | None = None
        self._error: BaseException | None = None
        self.port: int = port

    @property
    def url(self) -> str:
        """Base URL of the running server, without a trailing slash."""
        if not self.started:
            raise RuntimeError(f"{self.name} server is not running")
        return f"http://{self.host}:{self.port}"

    @property
    def started(self) -> bool:
        """True once uvicorn listens and until ``stop()``."""
        return bool(self._server.started) and self._thread is not None and self._thread.is_alive()

    def _run(self) -> None:
        try:
            self._server.run()
        except BaseException as exc:  # uvicorn calls sys.exit() when it cannot bind
            self._error = exc

    def start(self, timeout: float = 10.0) -> Self:
        """Start serving and block until the server accepts connections."""
        if self._thread is not None:
            raise RuntimeError(f"{self.name} server was already started")
        self._thread = threading.Thread(target=self._run, name=f"uvicorn-{self.name}", daemon=True)
        self._thread.start()
        deadline = time.monotonic() + timeout
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                self._server.should_exit = True
                raise RuntimeError(f"{self.name} server did not start: {self._error!r}")
            time.sleep(0.005)
        sockets = self._server.servers[0].sockets
        self.port = int(sockets[0].getsockname()[1])
        return self

    def stop(self, timeout: float = 5.0) -> None:
        """Ask uvicorn to exit and wait for the thread (forcing exit after half the timeout)."""
        thread = self._thread
        if thread is None:
            return
        self._server.should_exit = True
        thread.join(timeout / 2)
        if thread.is_alive():
            self._server.force_exit = True
            thread.join(timeout / 2)

    def __enter__(self) -> Self:
        return self.start() if self._thread is None else self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
