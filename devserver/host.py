"""A local Azure Functions host for the v2 Python programming model.

Runs the app's ``function_app.py`` the way ``func start`` does, for machines without Core Tools:
HTTP triggers on ``http://127.0.0.1:7071/<routePrefix>/...``, queue triggers against a storage account
(Azurite locally) with host.json's queue semantics, and timer triggers on their NCRONTAB schedules.
The trigger parts live in :mod:`devserver.hostlib` (``http``, ``queues``, ``timers``); this module
runs them together on one event loop.

Command line::

    python -m devserver.host [--app-root DIR] [--host 127.0.0.1] [--port 7071] [--shutdown-timeout 10]

A port already taken, or an app that refuses to start with a message of its own (see
:func:`devserver.hostlib.startup.refusal_message`), ends the command with that one line and exit code 2.

In-process::

    with LocalHost(Path("."), port=0) as host:
        httpx.get(f"{host.url}/api/health")
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import functools
import logging
import os
import signal
import socket
import sys
import threading
import time
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TextIO

import uvicorn

from devserver.hostlib.config import (
    HostConfigError,
    HostSettings,
    QueueOptions,
    apply_local_settings,
    read_local_settings,
)
from devserver.hostlib.functions import (
    FunctionSpec,
    HttpFunction,
    QueueFunction,
    TimerFunction,
    discover,
    load_function_app,
)
from devserver.hostlib.http import MAX_INCOMPLETE_REQUEST, HttpTriggerApp
from devserver.hostlib.invocation import invoke_function
from devserver.hostlib.queues import DEFAULT_QUEUE_LEASE, QueueListener
from devserver.hostlib.startup import PortInUse, bind_socket, refusal_message
from devserver.hostlib.timers import TimerRunner, utc_now

__all__ = ["HostConfigError", "LocalHost", "PortInUse", "configure_logging", "main"]

log = logging.getLogger("Host.Function")
DEFAULT_PORT = 7071


def configure_logging(level: int = logging.INFO, stream: TextIO | None = None) -> None:
    """Log to stderr like ``func start`` (UTC timestamps), keeping the app's own logging visible."""
    handler = logging.StreamHandler(stream or sys.stderr)
    formatter = logging.Formatter("[%(asctime)s.%(msecs)03dZ] %(message)s", "%Y-%m-%dT%H:%M:%S")
    formatter.converter = time.gmtime
    handler.setFormatter(formatter)
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    # The storage SDK logs every request at INFO, which would drown the function logs.
    for noisy in ("azure", "uvicorn.access", "httpx", "httpcore"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


def flush_telemetry(timeout_millis: int = 5000) -> None:
    """Export what the app's OpenTelemetry providers still hold (spans, metrics, log records), as the
    Functions worker does when the host stops; nothing when the app never started OpenTelemetry. The
    SDK's own exit hook shuts the providers down afterwards."""
    if "opentelemetry.sdk" not in sys.modules:
        return
    from opentelemetry import _logs, metrics, trace

    for provider in (trace.get_tracer_provider(), metrics.get_meter_provider(), _logs.get_logger_provider()):
        flush = getattr(provider, "force_flush", None)
        if callable(flush):
            try:
                flush(timeout_millis)
            except Exception:  # an exporter whose endpoint is gone: the host stops all the same
                log.warning("telemetry of the app could not be flushed: %s", type(provider).__name__)


class LocalHost:
    """Runs one Functions app in-process: HTTP server, queue listeners and timers on one event loop.

    ``start()`` loads the settings and the app in the calling thread (so configuration errors raise
    there), then serves from a background thread until ``stop()``. Sync functions run in a thread
    pool, async functions on the loop, as the Python worker does.
    """

    def __init__(
        self,
        app_root: Path | str | None = None,
        host: str = "127.0.0.1",
        port: int | None = None,
        env: Mapping[str, str] | None = None,
        *,
        shutdown_timeout: float = 10.0,
        queue_lease: float = DEFAULT_QUEUE_LEASE,
        out: TextIO | None = None,
    ) -> None:
        """Prepare a host; nothing is loaded until :meth:`start`.

        ``port`` None means ``Host.LocalHttpPort`` of local.settings.json, else 7071; 0 picks a free
        port (see :attr:`port` after start). ``env`` is put into ``os.environ`` (overriding it) for the
        host's lifetime; local.settings.json ``Values`` fill in only what is still unset.
        ``out`` receives the start banner (default stdout).
        """
        self.app_root = Path(app_root or Path.cwd()).resolve()
        self.host = host
        self.port = port
        self.env = dict(env or {})
        self.shutdown_timeout = shutdown_timeout
        self.queue_lease = queue_lease
        self.out = out or sys.stdout
        self.settings: HostSettings | None = None
        self.functions: list[FunctionSpec] = []
        self._http_app = HttpTriggerApp(self, ())
        self._saved_env: dict[str, str | None] = {}
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop_event: asyncio.Event | None = None
        self._ready = threading.Event()
        self._done = threading.Event()
        self._failure: BaseException | None = None
        self._pool: ThreadPoolExecutor | None = None
        self._io: ThreadPoolExecutor | None = None
        self._server: uvicorn.Server | None = None
        self._invocations: set[asyncio.Task[Any]] = set()
        self._listeners: list[QueueListener] = []

    # -- lifecycle ---------------------------------------------------------------------------------

    @property
    def url(self) -> str:
        """Base URL of the HTTP server, e.g. ``http://127.0.0.1:7071``."""
        return f"http://{self.host}:{self.port}"

    @property
    def running(self) -> bool:
        """True between a successful start and the end of stop (or a fatal error)."""
        return self._ready.is_set() and not self._done.is_set()

    def start(self, timeout: float = 60.0) -> None:
        """Load settings and the app, bind the port, start serving; return once ready.

        Raises :class:`PortInUse` (an ``OSError``) if the port is taken, before loading anything;
        :class:`HostConfigError` for an app the host cannot run; and whatever importing ``function_app``
        raises (see :func:`~devserver.hostlib.startup.refusal_message`). On failure the environment is
        restored.
        """
        try:
            self._start(timeout)
        except BaseException:
            self._restore_env()
            raise

    def _start(self, timeout: float) -> None:
        local_settings = read_local_settings(self.app_root)
        for key, value in self.env.items():
            self._saved_env.setdefault(key, os.environ.get(key))
            os.environ[key] = value
        for key in apply_local_settings(local_settings, os.environ):
            self._saved_env.setdefault(key, None)
        if self.port is None:
            self.port = int((local_settings.get("Host") or {}).get("LocalHttpPort") or DEFAULT_PORT)
        # Binding here, not in uvicorn, makes a taken port an error for the caller (uvicorn would call
        # sys.exit) and lets port 0 pick a free port; binding first makes it fail before the app loads.
        sock = bind_socket(self.host, self.port)
        try:
            options = self._load()
        except BaseException:
            sock.close()
            raise
        sock.listen(2048)
        self.port = sock.getsockname()[1]
        concurrency = sum(options.batch_size + options.new_batch_threshold for _ in self._listeners)
        self._pool = ThreadPoolExecutor(max_workers=32 + concurrency, thread_name_prefix="func")
        self._io = ThreadPoolExecutor(max_workers=8 + 2 * concurrency, thread_name_prefix="storage")
        self._thread = threading.Thread(
            target=self._thread_main, args=(sock,), name="local-host", daemon=True
        )
        self._thread.start()
        if not self._ready.wait(timeout) or self._failure is not None:
            failure = self._failure
            self.stop()
            if failure is not None:
                raise failure
            raise TimeoutError(f"the local host did not start within {timeout:.0f}s")

    def _load(self) -> QueueOptions:
        """Read host.json, import the app and discover its functions; the queue options."""
        self.settings = HostSettings.load(self.app_root)
        app = load_function_app(self.app_root)
        self.functions = discover(app, self.app_root, self.settings.route_prefix, os.environ)
        self._http_app = HttpTriggerApp(self, (f for f in self.functions if isinstance(f, HttpFunction)))
        options = self.settings.queues
        self._listeners = [
            QueueListener(self, spec, options) for spec in self.functions if isinstance(spec, QueueFunction)
        ]
        return options

    def stop(self, timeout: float | None = None) -> None:
        """Stop polling, let running invocations finish (bounded by ``shutdown_timeout``), stop serving."""
        if self._loop is not None and self._stop_event is not None and not self._done.is_set():
            with contextlib.suppress(RuntimeError):
                self._loop.call_soon_threadsafe(self._stop_event.set)
        if self._thread is not None:
            self._thread.join(timeout if timeout is not None else self.shutdown_timeout * 2 + 10)
        for pool in (self._pool, self._io):
            if pool is not None:
                pool.shutdown(wait=False, cancel_futures=True)
        flush_telemetry()
        self._restore_env()

    def _restore_env(self) -> None:
        for key, value in self._saved_env.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
        self._saved_env.clear()

    def wait(self, timeout: float | None = None) -> bool:
        """Block until the host has stopped; False on timeout."""
        return self._done.wait(timeout)

    def __enter__(self) -> LocalHost:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _thread_main(self, sock: socket.socket) -> None:
        try:
            asyncio.run(self._serve(sock))
        except BaseException as exc:
            if not self._ready.is_set():
                self._failure = exc
            else:
                log.exception("The local host stopped on an error")
        finally:
            sock.close()
            self._done.set()
            self._ready.set()

    async def _serve(self, sock: socket.socket) -> None:
        self._loop = asyncio.get_running_loop()
        self._stop_event = asyncio.Event()
        config = uvicorn.Config(
            self._http_app,
            log_level="warning",
            access_log=False,
            lifespan="off",
            interface="asgi3",
            h11_max_incomplete_event_size=MAX_INCOMPLETE_REQUEST,
            timeout_graceful_shutdown=max(1, int(self.shutdown_timeout)),
        )
        self._server = uvicorn.Server(config)
        server_task = asyncio.create_task(self._server.serve(sockets=[sock]))
        while not self._server.started:
            if server_task.done():
                server_task.result()
                raise RuntimeError("the HTTP server stopped during start-up")
            await asyncio.sleep(0.01)
        for listener in self._listeners:
            await listener.prepare()
        background = [asyncio.create_task(listener.run()) for listener in self._listeners]
        background += [
            asyncio.create_task(TimerRunner(self, spec).run())
            for spec in self.functions
            if isinstance(spec, TimerFunction)
        ]
        self._print_banner()
        self._ready.set()
        await self._stop_event.wait()
        log.info("Stopping the host: no new messages; waiting for running invocations")
        self._server.should_exit = True
        await asyncio.wait(background, timeout=self.shutdown_timeout)
        if self._invocations:
            _, pending = await asyncio.wait(set(self._invocations), timeout=self.shutdown_timeout)
            if pending:
                log.warning("%d invocation(s) still running at shutdown were abandoned", len(pending))
        for task in background:
            task.cancel()
        await server_task
        log.info("Host stopped")

    def _print_banner(self) -> None:
        lines = ["", "Functions:", ""]
        for spec in self.functions:
            if isinstance(spec, HttpFunction):
                methods = ",".join(sorted(spec.methods))
                lines.append(f"\t{spec.name}: [{methods}] {self.url}/{spec.route.template}")
            elif isinstance(spec, QueueFunction):
                lines.append(
                    f"\t{spec.name}: queueTrigger (queue: {spec.queue_name}, connection: {spec.connection})"
                )
            elif isinstance(spec, TimerFunction):
                upcoming = spec.schedule.next_after(utc_now()).isoformat()
                lines.append(
                    f"\t{spec.name}: timerTrigger (schedule: {spec.schedule.expression}, next: {upcoming})"
                )
            lines.append("")
        lines.append(f"Host started: {self.url}")
        print("\n".join(lines), file=self.out, flush=True)

    # -- invocation -------------------------------------------------------------------------------

    async def invoke(self, spec: FunctionSpec, trigger_value: Any, reason: str) -> Any:
        """Call a function like the host: log it, bind trigger and ``context``, run sync code in the pool.

        Raises :class:`~devserver.hostlib.invocation.InvocationError` (after logging the traceback)
        when the function raises.
        """
        return await invoke_function(spec, trigger_value, reason, self._pool)

    def track(self, task: asyncio.Task[Any]) -> None:
        """Remember a background invocation so that shutdown waits for it."""
        self._invocations.add(task)
        task.add_done_callback(self._invocations.discard)

    async def run_io(self, call: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        """Run a blocking storage call off the loop (its own pool, so functions cannot starve it)."""
        return await asyncio.get_running_loop().run_in_executor(
            self._io, functools.partial(call, *args, **kwargs)
        )

    def stopping(self) -> bool:
        """True once stop was requested."""
        return self._stop_event is not None and self._stop_event.is_set()

    async def sleep_unless_stopping(self, seconds: float) -> None:
        """Sleep, but return early when the host is asked to stop."""
        assert self._stop_event is not None
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._stop_event.wait(), timeout=max(0.0, seconds))


def _parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m devserver.host",
        description="Run a v2-model Python Functions app locally (HTTP, queue and timer triggers).",
    )
    parser.add_argument(
        "--app-root", type=Path, default=None, help="folder of function_app.py (default: cwd)"
    )
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (default: 127.0.0.1)")
    parser.add_argument(
        "--port",
        type=int,
        default=None,
        help=f"HTTP port (default: Host.LocalHttpPort of local.settings.json, else {DEFAULT_PORT})",
    )
    parser.add_argument(
        "--shutdown-timeout",
        type=float,
        default=10.0,
        help="seconds running invocations get to finish on SIGINT/SIGTERM (default: 10)",
    )
    parser.add_argument(
        "--verbose", action="store_true", help="debug logging, and the traceback of any start-up failure"
    )
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    """Command line entry point: run until SIGINT/SIGTERM, then stop gracefully and return 0."""
    args = _parse_args(argv)
    configure_logging(logging.DEBUG if args.verbose else logging.INFO)
    app_root = (args.app_root or Path.cwd()).resolve()
    # The Python worker runs with the app root as working directory; so does this host.
    os.chdir(app_root)
    stop_requested = threading.Event()

    def on_signal(signum: int, _frame: object) -> None:
        if stop_requested.is_set():
            # A second Ctrl-C means "now".
            os._exit(130)
        stop_requested.set()

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    host = LocalHost(app_root, args.host, args.port, shutdown_timeout=args.shutdown_timeout)
    try:
        host.start()
    except PortInUse as exc:
        log.error("Cannot start the host: port %s is in use; choose another with --port", exc.port)
        return 2
    except HostConfigError as exc:
        log.error("Cannot start the host: %s", exc)
        return 2
    except OSError as exc:
        log.error("Cannot listen on %s:%s: %s", args.host, host.port, exc)
        return 2
    except Exception as exc:
        refusal = None if args.verbose else refusal_message(exc, app_root)
        if refusal is not None:
            log.error("Cannot start the host: %s", refusal)
        else:
            log.exception("Cannot start the host: loading %s failed", app_root / "function_app.py")
        return 2
    while not stop_requested.wait(0.5):
        if not host.running:
            log.error("The host stopped unexpectedly")
            return 1
    host.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
