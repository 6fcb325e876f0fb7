"""Common machinery of the simulated services.

Each fake is an ASGI application built on :class:`FakeService`:

* routes are matched **case-insensitively** (an optional trailing slash is tolerated);
* every request to a non-control route is recorded (method, path, query, headers without the
  ``Authorization`` value, the token's ``aud``/``oid``/``appid``, the JSON body, the status answered);
* faults can be queued for a method and path pattern (status, ``Retry-After``, delay, "perform then
  fail", "perform then hold the answer", connection drop), from Python or over HTTP;
* a control API under ``/_fake/`` (no auth) exposes the recorded requests and the faults;
* all state is guarded by one re-entrant lock, because the server runs on its own thread while tests
  inspect the state from the main thread.
"""

from __future__ import annotations

import asyncio
import copy
import json
import logging
import re
import threading
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Self

from starlette.requests import Request
from starlette.responses import Response

from devserver.fakes._control import ServiceControlRoutes
from devserver.fakes._faults import Fault
from devserver.fakes._http import (
    Call,
    ConnectionDroppedError,
    HttpError,
    Receive,
    Scope,
    Send,
    compile_pattern,
    iso_at,
    problem,
    utc_now,
)
from devserver.servers import ServerThread

# The fakes import these from here; they live in _http and _faults.
__all__ = [
    "Call",
    "ConnectionDroppedError",
    "FakeService",
    "Fault",
    "Handler",
    "HttpError",
    "Receive",
    "Scope",
    "Send",
    "compile_pattern",
    "iso_at",
    "problem",
    "utc_now",
]

Handler = Callable[[Call], Awaitable[Response]]


class _QuietDrops(logging.Filter):
    """Keeps uvicorn from logging a traceback for deliberately dropped connections."""

    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        return not isinstance(exc, ConnectionDroppedError)


_quiet_drops = _QuietDrops()
logging.getLogger("uvicorn.error").addFilter(_quiet_drops)


@dataclass
class _Route:
    method: str
    pattern: str
    regex: re.Pattern[str]
    handler: Handler
    control: bool
    auth: bool


class FakeService:
    """Base class: case-insensitive routing, request log, faults, ``/_fake/`` control API, server."""

    #: name used for the server thread and in messages
    service_name = "fake"

    def __init__(self) -> None:
        self.lock = threading.RLock()
        self._routes: list[_Route] = []
        self._faults: list[Fault] = []
        self._requests: list[dict[str, Any]] = []
        self._server: ServerThread | None = None
        ServiceControlRoutes(self).register()

    # ----------------------------------------------------------------- routing and serving
    def route(
        self, method: str, pattern: str, handler: Handler, *, control: bool = False, auth: bool = True
    ) -> None:
        """Register ``handler`` for ``method`` and a path pattern (see :func:`compile_pattern`)."""
        self._routes.append(
            _Route(method.upper(), pattern, compile_pattern(pattern), handler, control, auth and not control)
        )

    def authenticate(self, call: Call) -> dict[str, Any] | None:
        """Hook: validate the caller and return the token claims (raise :class:`HttpError` to refuse)."""
        return None

    def start(self, *, port: int = 0) -> Self:
        """Serve this fake on 127.0.0.1 in a background thread."""
        with self.lock:
            if self._server is not None:
                raise RuntimeError(f"{self.service_name} is already running")
            server = self._server = ServerThread(self, port=port, name=self.service_name)
        try:
            server.start()
        except BaseException:
            self._server = None
            raise
        return self

    def stop(self) -> None:
        """Stop the background server (if any)."""
        server, self._server = self._server, None
        if server is not None:
            server.stop()

    @property
    def url(self) -> str:
        """Base URL (``http://127.0.0.1:<port>``) of the running server."""
        if self._server is None:
            raise RuntimeError(f"{self.service_name} is not running; call start() first")
        return self._server.url

    def __enter__(self) -> Self:
        return self.start() if self._server is None else self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # ----------------------------------------------------------------- faults
    def inject(
        self,
        method: str | None = None,
        path: str = "**",
        status: int | None = None,
        *,
        times: int | None = 1,
        retry_after: float | str | None = None,
        delay: float = 0.0,
        perform: bool = False,
        drop: bool = False,
        body: Any = None,
        headers: dict[str, str] | None = None,
        hold: float = 0.0,
        body_contains: str | None = None,
    ) -> Fault:
        """Queue a fault; see :class:`Fault`. Faults are consulted in the order they were added."""
        fault = Fault(
            method=method,
            path=path,
            status=status,
            times=times,
            retry_after=retry_after,
            delay=delay,
            perform=perform,
            drop=drop,
            body=body,
            headers=headers,
            hold=hold,
            body_contains=body_contains,
        )
        self.add_faults([fault])
        return fault

    def add_faults(self, faults: Iterable[Fault]) -> None:
        """Queue faults built elsewhere (e.g. from the control API's JSON), after those queued already."""
        with self.lock:
            self._faults.extend(faults)

    def clear_faults(self) -> None:
        """Remove every queued fault."""
        with self.lock:
            self._faults.clear()

    def faults(self) -> list[Fault]:
        """Faults still pending (a copy of the list)."""
        with self.lock:
            return list(self._faults)

    def _take_fault(self, method: str, path: str, body: bytes = b"") -> Fault | None:
        with self.lock:
            for fault in self._faults:
                if fault.matches(method, path, body) and not fault.exhausted:
                    fault.hits += 1
                    if fault.exhausted:
                        self._faults.remove(fault)
                    return fault
        return None

    # ----------------------------------------------------------------- request log
    def requests(self, method: str | None = None, path: str | None = None) -> list[dict[str, Any]]:
        """Recorded requests (deep copies), optionally filtered by method and path pattern."""
        regex = compile_pattern(path) if path is not None else None
        with self.lock:
            return [
                copy.deepcopy(item)
                for item in self._requests
                if (method is None or item["method"] == method.upper())
                and (regex is None or regex.match(item["path"]))
            ]

    def clear_requests(self) -> None:
        """Forget the recorded requests."""
        with self.lock:
            self._requests.clear()

    def reset(self) -> None:
        """Back to a clean state: no faults, no recorded requests (subclasses clear their data too)."""
        with self.lock:
            self._faults.clear()
            self._requests.clear()

    def _record(self, call: Call, *, control: bool) -> dict[str, Any] | None:
        if control:
            return None
        entry = request_record(call)
        with self.lock:
            self._requests.append(entry)
        return entry

    # ----------------------------------------------------------------- ASGI entry point
    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """ASGI application."""
        if scope["type"] != "http":
            return
        request = Request(scope, receive)
        body = await request.body()
        path = request.url.path
        method = request.method.upper()
        route, params, allowed = self._match(method, path)
        call = Call(request=request, params=params, body=body)
        entry = self._record(call, control=route is not None and route.control)
        response, drop = await self._dispatch(call, route, allowed, entry)
        if entry is not None:
            with self.lock:
                entry["status"] = None if drop else response.status_code
                entry["auth"] = claims_summary(call.claims)
        if drop:
            await drop_connection(send)
            return
        await response(scope, receive, send)

    def _match(self, method: str, path: str) -> tuple[_Route | None, dict[str, str], list[str]]:
        allowed: list[str] = []
        for route in self._routes:
            found = route.regex.match(path)
            if not found:
                continue
            if route.method == method:
                return route, found.groupdict(), allowed
            allowed.append(route.method)
        return None, {}, allowed

    async def _dispatch(
        self, call: Call, route: _Route | None, allowed: list[str], entry: dict[str, Any] | None
    ) -> tuple[Response, bool]:
        fault = None
        if route is None or not route.control:
            fault = self._take_fault(call.request.method, call.request.url.path, call.body)
        if fault is not None:
            if entry is not None:
                with self.lock:
                    entry["fault"] = fault.to_json()
            if fault.delay:
                await asyncio.sleep(fault.delay)
            if not fault.perform and not fault.hold and (fault.status is not None or fault.drop):
                return fault.response(), fault.drop
        response = await self._handle(call, route, allowed)
        if fault is not None and fault.hold:
            await fault.wait_hold()
            if fault.status is not None or fault.drop:
                return fault.response(), fault.drop
            return response, False
        if fault is not None and fault.perform:
            return fault.response(), fault.drop
        return response, False

    async def _handle(self, call: Call, route: _Route | None, allowed: list[str]) -> Response:
        try:
            if route is None:
                if allowed:
                    raise HttpError(
                        405,
                        {"error": {"code": "MethodNotAllowed", "message": "The method is not allowed."}},
                        headers={"Allow": ", ".join(sorted(set(allowed)))},
                    )
                raise HttpError(404, self.not_found_body(call))
            if route.auth:
                call.claims = self.authenticate(call)
            return await route.handler(call)
        except HttpError as exc:
            return exc.response()

    def not_found_body(self, call: Call) -> Any:
        """Body answered for an unknown path."""
        return problem(404, f"No route for {call.request.method} {call.request.url.path}")


def request_record(call: Call) -> dict[str, Any]:
    """The request-log entry of ``call``: secrets masked, the body as JSON or else as text."""
    headers: dict[str, str] = {}
    for key, value in call.request.headers.items():
        if key.lower() == "x-identity-header":
            value = "***"
        elif key.lower() == "authorization":
            scheme = value.split(" ", 1)[0] if value else ""
            value = f"{scheme} ***" if scheme else "***"
        headers[key.lower()] = value
    body_json: Any = None
    body_text: str | None = None
    if call.body:
        try:
            body_json = json.loads(call.body)
        except (ValueError, UnicodeDecodeError):
            body_text = call.body.decode("utf-8", "replace")
    return {
        "time": utc_now(),
        "method": call.request.method.upper(),
        "path": call.request.url.path,
        "query": dict(call.request.query_params.multi_items()),
        "headers": headers,
        "auth": None,
        "json": body_json,
        "text": body_text,
        "status": None,
        "fault": None,
    }


def claims_summary(claims: Mapping[str, Any] | None) -> dict[str, Any] | None:
    """The token claims a request-log entry keeps (``aud``, ``oid``, ``appid``)."""
    if claims is None:
        return None
    return {key: claims.get(key) for key in ("aud", "oid", "appid")}


async def drop_connection(send: Send) -> None:
    """Start a response, send part of its body, then make uvicorn close the connection."""
    await send(
        {
            "type": "http.response.start",
            "status": 200,
            "headers": [(b"content-type", b"application/json"), (b"content-length", b"1000")],
        }
    )
    await send({"type": "http.response.body", "body": b'{"id":', "more_body": True})
    raise ConnectionDroppedError("connection dropped on purpose")
