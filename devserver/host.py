"""A local Azure Functions host for the v2 Python programming model.

Runs the app's ``function_app.py`` the way ``func start`` does, for machines without Core Tools:
HTTP triggers on ``http://127.0.0.1:7071/<routePrefix>/...``, queue triggers against a storage account
(Azurite locally) with host.json's queue semantics, and timer triggers on their NCRONTAB schedules.

Command line::

    python -m devserver.host [--app-root DIR] [--host 127.0.0.1] [--port 7071] [--shutdown-timeout 10]

In-process::

    with LocalHost(Path("."), port=0) as host:
        httpx.get(f"{host.url}/api/health")
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import binascii
import contextlib
import contextvars
import functools
import json
import logging
import os
import secrets
import signal
import socket
import sys
import threading
import time
import uuid
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TextIO

import azure.functions as func
import uvicorn
from azure.core.exceptions import ResourceExistsError, ResourceNotFoundError
from azure.functions import _abc as func_abc
from azure.functions.queue import QueueMessage as FunctionQueueMessage
from azure.functions.timer import TimerRequest
from azure.storage.queue import QueueClient, QueueMessage
from starlette.requests import Request

from devserver.hostlib.config import (
    HostConfigError,
    HostSettings,
    QueueOptions,
    apply_local_settings,
    read_local_settings,
    storage_connection_string,
)
from devserver.hostlib.functions import (
    FunctionSpec,
    HttpFunction,
    InvocationContext,
    QueueFunction,
    TimerFunction,
    discover,
    load_function_app,
)
from devserver.hostlib.routes import precedence_key

__all__ = ["HostConfigError", "LocalHost", "configure_logging", "main"]

log = logging.getLogger("Host.Function")
ROOT = Path(__file__).resolve().parent.parent
DEFAULT_PORT = 7071
# The Functions host rejects request bodies over 100 MB (maxRequestBodySize); so does this one.
MAX_REQUEST_BODY = 104_857_600
# Kestrel, under the Functions host, answers 414 to a request line over 8 KiB (MaxRequestLineSize) and
# 431 to more than 32 KiB of headers (MaxRequestHeadersTotalSize); so does this one, as problem+json.
MAX_REQUEST_TARGET = 8192
MAX_REQUEST_HEADERS = 32768
# The HTTP parser buffers this much of an incomplete request, so that a request over the limits above
# still reaches the checks that answer it (rather than a bare 400 from the parser).
MAX_INCOMPLETE_REQUEST = 1024 * 1024
# The host never polls an idle queue faster than this and starts here after finding messages.
MIN_POLL_INTERVAL = 0.1
# A received message stays invisible this long while its function runs, renewed at half of it,
# as the host's queue listener does (10 minutes).
DEFAULT_QUEUE_LEASE = 600.0
HTTP_REASON = "This function was programmatically called via the host APIs."


class InvocationError(Exception):
    """A function invocation raised; the cause is the function's exception."""


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


def _now() -> datetime:
    return datetime.now(UTC)


def _trace_parent() -> str:
    return f"00-{secrets.token_hex(16)}-{secrets.token_hex(8)}-01"


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
        self._http: list[HttpFunction] = []
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

        Raises :class:`HostConfigError` for an app the host cannot run, ``OSError`` if the port is taken,
        and whatever importing ``function_app`` raises. On failure the environment is restored.
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
        self.settings = HostSettings.load(self.app_root)
        app = load_function_app(self.app_root)
        self.functions = discover(app, self.app_root, self.settings.route_prefix, os.environ)
        self._http = sorted(
            (f for f in self.functions if isinstance(f, HttpFunction)), key=lambda f: precedence_key(f.route)
        )
        options = self.settings.queues
        self._listeners = [
            QueueListener(self, spec, options) for spec in self.functions if isinstance(spec, QueueFunction)
        ]
        # Binding here, not in uvicorn, makes a taken port an OSError for the caller (uvicorn would
        # call sys.exit) and lets port 0 pick a free port.
        sock = socket.socket(socket.AF_INET6 if ":" in self.host else socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((self.host, self.port))
        except OSError:
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
            self._asgi,
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
            asyncio.create_task(self._run_timer(spec))
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
                upcoming = spec.schedule.next_after(_now()).isoformat()
                lines.append(
                    f"\t{spec.name}: timerTrigger (schedule: {spec.schedule.expression}, next: {upcoming})"
                )
            lines.append("")
        lines.append(f"Host started: {self.url}")
        print("\n".join(lines), file=self.out, flush=True)

    # -- invocation -------------------------------------------------------------------------------

    async def invoke(self, spec: FunctionSpec, trigger_value: Any, reason: str) -> Any:
        """Call a function like the host: log it, bind trigger and ``context``, run sync code in the pool.

        Raises :class:`InvocationError` (after logging the traceback) when the function raises.
        """
        invocation_id = str(uuid.uuid4())
        context = InvocationContext(invocation_id, spec.name, str(spec.app_root), _trace_parent())
        kwargs: dict[str, Any] = {spec.trigger_arg: trigger_value}
        if spec.wants_context:
            kwargs["context"] = context
        log.info("Executing 'Functions.%s' (Reason='%s', Id=%s)", spec.name, reason, invocation_id)
        started = time.monotonic()
        try:
            if spec.is_async:
                result = await spec.user_function(**kwargs)
            else:
                assert self._pool is not None
                call: Callable[[], Any] = functools.partial(spec.user_function, **kwargs)
                result = await asyncio.get_running_loop().run_in_executor(
                    self._pool, contextvars.copy_context().run, call
                )
        except Exception as exc:
            duration = (time.monotonic() - started) * 1000
            log.error(
                "Executed 'Functions.%s' (Failed, Id=%s, Duration=%dms)",
                spec.name,
                invocation_id,
                duration,
                exc_info=exc,
            )
            raise InvocationError(f"{spec.name} failed: {exc!r}") from exc
        duration = (time.monotonic() - started) * 1000
        log.info(
            "Executed 'Functions.%s' (Succeeded, Id=%s, Duration=%dms)", spec.name, invocation_id, duration
        )
        return result

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

    # -- HTTP ---------------------------------------------------------------------------------------

    async def _asgi(
        self, scope: dict[str, Any], receive: Callable[..., Any], send: Callable[..., Any]
    ) -> None:
        if scope["type"] != "http":
            return
        if await _refuse_oversized(scope, send):
            return
        method = scope["method"].upper()
        path = scope["path"].lstrip("/")
        allowed: set[str] = set()
        for spec in self._http:
            route_params = spec.route.match(path)
            if route_params is None:
                continue
            if method in spec.methods:
                await self._handle_http(spec, route_params, scope, receive, send)
                return
            allowed |= spec.methods
        if allowed:
            await _send(send, 405, b"Method Not Allowed", [(b"allow", ", ".join(sorted(allowed)).encode())])
        elif path == "" and method in ("GET", "HEAD"):
            # func start answers the site root with a splash page; a plain line is enough here.
            await _send(send, 200, b"Your Functions app is up and running (local host).")
        elif path.lower() == "admin/host/status" and method == "GET":
            await _send(
                send, 200, json.dumps({"state": "Running"}).encode(), content_type=b"application/json"
            )
        else:
            await _send(send, 404, b"Not Found")

    async def _handle_http(
        self,
        spec: HttpFunction,
        route_params: dict[str, str],
        scope: dict[str, Any],
        receive: Callable[..., Any],
        send: Callable[..., Any],
    ) -> None:
        request = Request(scope, receive)
        chunks: list[bytes] = []
        size = 0
        async for chunk in request.stream():
            size += len(chunk)
            if size > MAX_REQUEST_BODY:
                await _send(send, 413, b"Request body too large")
                return
            chunks.append(chunk)
        headers: dict[str, str] = {}
        for key, value in request.headers.items():
            # Repeated headers reach the function joined, as the host's HttpRequest shows them.
            headers[key] = f"{headers[key]}, {value}" if key in headers else value
        req = func.HttpRequest(
            method=scope["method"].upper(),
            url=str(request.url),
            headers=headers,
            params=dict(request.query_params),
            route_params=route_params,
            body=b"".join(chunks),
        )
        try:
            result = await self.invoke(spec, req, HTTP_REASON)
            status, response_headers, body = _to_http_response(result)
        except InvocationError:
            await _send(send, 500, b"Internal Server Error: the function failed; see the host log")
            return
        except TypeError as exc:
            log.error("Function '%s' returned an unsupported value: %s", spec.name, exc)
            await _send(send, 500, b"Internal Server Error: the function returned an unsupported value")
            return
        await send({"type": "http.response.start", "status": status, "headers": response_headers})
        await send({"type": "http.response.body", "body": b"" if scope["method"] == "HEAD" else body})

    # -- timers -------------------------------------------------------------------------------------

    async def _run_timer(self, spec: TimerFunction) -> None:
        try:
            await self._timer_loop(spec)
        except Exception:
            # Without this a broken timer would fail silently inside its task.
            log.exception("Timer of '%s' stopped on an error", spec.name)

    async def _timer_loop(self, spec: TimerFunction) -> None:
        last: datetime | None = None
        if spec.run_on_startup and not self.stopping():
            last = await self._fire_timer(spec, _now(), last, past_due=False)
        while not self.stopping():
            scheduled = spec.schedule.next_after(_now())
            await self.sleep_unless_stopping((scheduled - _now()).total_seconds())
            if self.stopping():
                break
            if _now() < scheduled:
                continue
            # A firing more than a second late (a busy or suspended machine) counts as past due.
            past_due = (_now() - scheduled).total_seconds() > 1.0
            last = await self._fire_timer(spec, scheduled, last, past_due=past_due)

    async def _fire_timer(
        self, spec: TimerFunction, scheduled: datetime, last: datetime | None, *, past_due: bool
    ) -> datetime:
        now = _now()
        status = {
            "Last": (last or now).isoformat(),
            "Next": spec.schedule.next_after(now).isoformat(),
            "LastUpdated": now.isoformat(),
        }
        request = TimerRequest(past_due=past_due, schedule_status=status, schedule={"AdjustForDST": True})
        # Like the host, one timer function never overlaps itself: the next firing waits for this one.
        task = asyncio.create_task(self.invoke(spec, request, f"Timer fired at {scheduled.isoformat()}"))
        self.track(task)
        with contextlib.suppress(InvocationError):
            await task
        return scheduled


async def _refuse_oversized(scope: dict[str, Any], send: Callable[..., Any]) -> bool:
    """Answer 414 or 431 (problem+json) to a request line or headers over Kestrel's limits."""
    query = scope.get("query_string") or b""
    target = len(scope.get("raw_path") or scope["path"].encode()) + (len(query) + 1 if query else 0)
    headers = sum(len(key) + len(value) + 4 for key, value in scope["headers"])
    if target > MAX_REQUEST_TARGET:
        status, title = 414, "URI Too Long"
        detail = f"the request target is {target} bytes; the limit is {MAX_REQUEST_TARGET} bytes"
    elif headers > MAX_REQUEST_HEADERS:
        status, title = 431, "Request Header Fields Too Large"
        detail = f"the request headers are {headers} bytes; the limit is {MAX_REQUEST_HEADERS} bytes"
    else:
        return False
    body = json.dumps({"type": "about:blank", "title": title, "status": status, "detail": detail})
    await _send(send, status, body.encode(), content_type=b"application/problem+json")
    return True


async def _send(
    send: Callable[..., Any],
    status: int,
    body: bytes,
    extra: list[tuple[bytes, bytes]] | None = None,
    content_type: bytes = b"text/plain; charset=utf-8",
) -> None:
    headers = [(b"content-type", content_type), (b"content-length", str(len(body)).encode()), *(extra or [])]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


def _to_http_response(result: Any) -> tuple[int, list[tuple[bytes, bytes]], bytes]:
    """(status, headers, body) for what an HTTP function returned, as the worker converts it."""
    if isinstance(result, func_abc.HttpResponse):
        status = int(result.status_code)
        pairs = list(result.headers.items())
        if not any(k.lower() == "content-type" for k, _ in pairs):
            mimetype = result.mimetype
            content_type = (
                f"{mimetype}; charset={result.charset}" if mimetype.startswith("text/") else mimetype
            )
            pairs.append(("content-type", content_type))
        body = result.get_body() or b""
    elif isinstance(result, str):
        status, pairs, body = 200, [("content-type", "text/plain; charset=utf-8")], result.encode()
    elif isinstance(result, bytes | bytearray):
        status, pairs, body = 200, [("content-type", "application/octet-stream")], bytes(result)
    elif result is None:
        status, pairs, body = 204, [], b""
    else:
        raise TypeError(f"expected func.HttpResponse, str, bytes or None, got {type(result).__name__}")
    # The server sets the length itself; a stale one from the function would corrupt the response.
    headers = [
        (k.lower().encode("latin-1"), str(v).encode("latin-1"))
        for k, v in pairs
        if k.lower() not in ("content-length", "transfer-encoding")
    ]
    headers.append((b"content-length", str(len(body)).encode()))
    return status, headers, body


class QueueListener:
    """Polls one queue for one function with the host's semantics.

    - receives up to ``batchSize`` messages, fetching again once no more than ``newBatchThreshold``
      are still running (so at most batchSize + newBatchThreshold run at once);
    - polls again at once after a non-empty batch, otherwise backs off exponentially from 100 ms
      to ``maxPollingInterval``;
    - success deletes the message; failure makes it visible again after ``visibilityTimeout``,
      unless it has been dequeued ``maxDequeueCount`` times: then it moves to ``<queue>-poison``;
    - a message received with a dequeue count above ``maxDequeueCount`` (its earlier runs crashed
      the process) and a message that is not valid base64 under ``messageEncoding: base64`` go to
      the poison queue without running the function.
    """

    def __init__(self, host: LocalHost, spec: QueueFunction, options: QueueOptions) -> None:
        """Resolve the connection; raises :class:`HostConfigError` if it is not configured."""
        self.host = host
        self.spec = spec
        self.options = options
        self.queue = self._client(spec.queue_name)
        self.poison = self._client(f"{spec.queue_name}-poison")
        self._poison_ready = False
        self._active: set[asyncio.Task[Any]] = set()
        self._failing_since: float | None = None

    def _client(self, queue_name: str) -> QueueClient:
        # No encode/decode policy: the listener sees the stored text and decodes it itself, so that
        # one undecodable message cannot break a whole batch, and poison copies keep the exact text.
        name = self.spec.connection
        settings = os.environ
        client_options: dict[str, Any] = {"retry_total": 1, "connection_timeout": 5, "read_timeout": 30}
        if settings.get(name):
            return QueueClient.from_connection_string(
                storage_connection_string(settings[name]), queue_name, **client_options
            )
        service_uri = settings.get(f"{name}__queueServiceUri") or settings.get(f"{name}__serviceUri")
        account = settings.get(f"{name}__accountName")
        if not service_uri and account:
            service_uri = f"https://{account}.queue.core.windows.net"
        if service_uri:
            credential = _credential(name, settings)
            return QueueClient(service_uri, queue_name, credential=credential, **client_options)
        raise HostConfigError(
            f"Function '{self.spec.name}': connection '{name}' is not configured: set the app setting "
            f"'{name}' to a connection string, or '{name}__queueServiceUri' for an identity-based connection"
        )

    async def prepare(self) -> None:
        """Create the queue if it is missing (a storage outage is logged; polling retries)."""
        try:
            await self.host.run_io(self._create, self.queue)
        except Exception as exc:
            log.warning(
                "Queue '%s' for '%s' not reachable yet: %s", self.spec.queue_name, self.spec.name, exc
            )

    @staticmethod
    def _create(client: QueueClient) -> None:
        with contextlib.suppress(ResourceExistsError):
            client.create_queue()

    async def run(self) -> None:
        """Poll until the host stops; then return without waiting for running invocations."""
        options = self.options
        delay = MIN_POLL_INTERVAL
        while not self.host.stopping():
            if len(self._active) > options.new_batch_threshold:
                await asyncio.wait(set(self._active), timeout=1.0, return_when=asyncio.FIRST_COMPLETED)
                continue
            try:
                messages = await self.host.run_io(self._receive, options.batch_size)
            except ResourceNotFoundError:
                await self.prepare()
                messages = []
            except Exception as exc:
                self._report_outage(exc)
                await self.host.sleep_unless_stopping(options.max_polling_interval)
                continue
            if self._failing_since is not None:
                log.info("Queue '%s' is reachable again", self.spec.queue_name)
                self._failing_since = None
            if messages and not self.host.stopping():
                for message in messages:
                    task = asyncio.create_task(self._process_logged(message))
                    self._active.add(task)
                    task.add_done_callback(self._active.discard)
                    self.host.track(task)
                delay = MIN_POLL_INTERVAL
                continue
            await self.host.sleep_unless_stopping(delay)
            delay = min(delay * 2, options.max_polling_interval)

    def _report_outage(self, exc: Exception) -> None:
        if self._failing_since is None:
            self._failing_since = time.monotonic()
            log.warning("Polling queue '%s' failed (will retry): %s", self.spec.queue_name, exc)

    def _receive(self, count: int) -> list[QueueMessage]:
        pages = self.queue.receive_messages(
            messages_per_page=count, max_messages=count, visibility_timeout=int(self.host.queue_lease)
        )
        return list(pages)

    def _decode(self, message: QueueMessage) -> bytes:
        text = message.content or ""
        if self.options.message_encoding == "base64":
            return base64.b64decode(text, validate=True)
        return text.encode("utf-8")

    async def _process_logged(self, message: QueueMessage) -> None:
        try:
            await self._process(message)
        except Exception:
            # A bug or storage error here must not vanish with the task; the lease brings it back.
            log.exception("Handling message %s on '%s' failed", message.id, self.spec.queue_name)

    async def _process(self, message: QueueMessage) -> None:
        lease = _Lease(message)
        options = self.options
        count = int(message.dequeue_count or 1)
        if count > options.max_dequeue_count:
            await self._to_poison(lease, f"dequeue count {count} is over maxDequeueCount")
            return
        try:
            body = self._decode(message)
        except (binascii.Error, ValueError) as exc:
            await self._to_poison(lease, f"the message is not valid base64 ({exc})")
            return
        trigger = FunctionQueueMessage(
            id=message.id,
            body=body,
            dequeue_count=count,
            expiration_time=message.expires_on,
            insertion_time=message.inserted_on,
            time_next_visible=message.next_visible_on,
            pop_receipt=message.pop_receipt,
        )
        renewal = asyncio.create_task(self._renew(lease))
        try:
            await self.host.invoke(
                self.spec, trigger, f"New queue message detected on '{self.spec.queue_name}'."
            )
        except InvocationError:
            renewal.cancel()
            if count >= options.max_dequeue_count:
                await self._to_poison(
                    lease, f"the function failed on dequeue {count} of {options.max_dequeue_count}"
                )
            else:
                await self._settle(lease, "release", options.visibility_timeout)
            return
        renewal.cancel()
        await self._settle(lease, "delete", 0)

    async def _renew(self, lease: _Lease) -> None:
        # Long-running functions keep the message invisible so that no second copy starts meanwhile.
        interval = max(1.0, self.host.queue_lease / 2)
        while True:
            await asyncio.sleep(interval)
            async with lease.lock:
                try:
                    updated = await self.host.run_io(
                        self.queue.update_message,
                        lease.message_id,
                        lease.pop_receipt,
                        visibility_timeout=int(self.host.queue_lease),
                    )
                    lease.pop_receipt = updated.pop_receipt
                except Exception as exc:
                    log.warning("Renewing the lease of message %s failed: %s", lease.message_id, exc)

    async def _settle(self, lease: _Lease, action: str, visibility: float) -> None:
        async with lease.lock:
            try:
                if action == "delete":
                    await self.host.run_io(self.queue.delete_message, lease.message_id, lease.pop_receipt)
                else:
                    await self.host.run_io(
                        self.queue.update_message,
                        lease.message_id,
                        lease.pop_receipt,
                        visibility_timeout=round(visibility),
                    )
            except Exception as exc:
                # The lease runs out and the message comes back: at-least-once, as with the host.
                log.warning(
                    "Could not %s message %s on '%s': %s", action, lease.message_id, self.spec.queue_name, exc
                )

    async def _to_poison(self, lease: _Lease, why: str) -> None:
        poison_name = f"{self.spec.queue_name}-poison"
        log.warning(
            "Message %s on '%s' moved to '%s': %s", lease.message_id, self.spec.queue_name, poison_name, why
        )
        try:
            if not self._poison_ready:
                await self.host.run_io(self._create, self.poison)
                self._poison_ready = True
            await self.host.run_io(self.poison.send_message, lease.content)
        except Exception as exc:
            log.error("Could not write message %s to '%s': %s", lease.message_id, poison_name, exc)
            # Leave the original in place: it reappears and is poisoned on a later dequeue.
            await self._settle(lease, "release", self.options.visibility_timeout)
            return
        await self._settle(lease, "delete", 0)


class _Lease:
    """The current pop receipt of a received message (it changes on every visibility update)."""

    def __init__(self, message: QueueMessage) -> None:
        self.message_id: str = message.id
        self.pop_receipt: str = message.pop_receipt or ""
        self.content: str = message.content or ""
        self.lock = asyncio.Lock()


def _credential(name: str, settings: Mapping[str, str]) -> Any:
    """Credential of an identity-based connection (``<name>__credential``, ``<name>__clientId``)."""
    from azure.identity import DefaultAzureCredential, ManagedIdentityCredential

    client_id = settings.get(f"{name}__clientId")
    if settings.get(f"{name}__credential", "").lower() == "managedidentity":
        return ManagedIdentityCredential(client_id=client_id) if client_id else ManagedIdentityCredential()
    return (
        DefaultAzureCredential(managed_identity_client_id=client_id)
        if client_id
        else DefaultAzureCredential()
    )


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
    parser.add_argument("--verbose", action="store_true", help="debug logging")
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
    except HostConfigError as exc:
        log.error("Cannot start the host: %s", exc)
        return 2
    except OSError as exc:
        log.error("Cannot listen on %s:%s: %s", args.host, host.port, exc)
        return 2
    except Exception:
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
