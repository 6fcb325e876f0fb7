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
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Self

from starlette.datastructures import QueryParams
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from devserver.servers import ServerThread

Scope = dict[str, Any]
Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]
Handler = Callable[["Call"], Awaitable[Response]]


def utc_now() -> str:
    """The current UTC time as ISO 8601 with a ``Z`` suffix and millisecond precision."""
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def iso_at(epoch: float) -> str:
    """``epoch`` (seconds) as ISO 8601 UTC with a ``Z`` suffix."""
    return datetime.fromtimestamp(epoch, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


class HttpError(Exception):
    """Raised by handlers to answer with an error status and JSON body."""

    def __init__(
        self,
        status: int,
        body: Any,
        *,
        headers: Mapping[str, str] | None = None,
        media_type: str = "application/json",
    ) -> None:
        super().__init__(f"{status}: {body!r}")
        self.status = status
        self.body = body
        self.headers = dict(headers or {})
        self.media_type = media_type

    def response(self) -> Response:
        """The error as a Starlette response."""
        return JSONResponse(self.body, self.status, headers=self.headers, media_type=self.media_type)


class ConnectionDroppedError(Exception):
    """Raised after a partial response to make uvicorn close the connection (a simulated drop)."""


class _QuietDrops(logging.Filter):
    """Keeps uvicorn from logging a traceback for deliberately dropped connections."""

    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        return not isinstance(exc, ConnectionDroppedError)


_quiet_drops = _QuietDrops()
logging.getLogger("uvicorn.error").addFilter(_quiet_drops)


def compile_pattern(pattern: str) -> re.Pattern[str]:
    """Compile a path pattern into a case-insensitive regex.

    ``{name}`` captures one path segment, ``*`` matches one segment, ``**`` matches anything
    (including slashes). A trailing slash on the request path is tolerated.
    """
    if pattern in ("", "*", "**"):
        return re.compile(r"^.*$", re.IGNORECASE | re.DOTALL)
    out = []
    for part in re.split(r"(\{[A-Za-z_][A-Za-z0-9_]*\}|\*\*|\*)", pattern.rstrip("/") or "/"):
        if part == "**":
            out.append(r".*")
        elif part == "*":
            out.append(r"[^/]+")
        elif part.startswith("{") and part.endswith("}"):
            out.append(f"(?P<{part[1:-1]}>[^/]+)")
        else:
            out.append(re.escape(part))
    return re.compile("^" + "".join(out) + "/?$", re.IGNORECASE)


@dataclass
class Fault:
    """A queued failure for requests whose method and path match.

    * ``status`` only: answer that status without touching state (``503`` when nothing else is set).
    * ``retry_after``: adds a ``Retry-After`` header (seconds).
    * ``delay``: wait that many seconds first; with no ``status`` the request then proceeds normally.
    * ``perform``: run the operation (it takes effect), then answer ``status`` (default 503) or drop.
    * ``hold``: run the operation (it takes effect), then hold the answer this many seconds (or until
      :meth:`release`) before sending it (or ``status``/``drop`` when set): the caller is left waiting
      after the work is done, so a test can kill it in between.
    * ``drop``: close the connection mid-response instead of answering.
    * ``times``: how many matching requests it affects (``None``: all of them until cleared).
    """

    method: str | None = None
    path: str = "**"
    status: int | None = None
    times: int | None = 1
    retry_after: float | str | None = None
    delay: float = 0.0
    perform: bool = False
    drop: bool = False
    body: Any = None
    headers: dict[str, str] | None = None
    hold: float = 0.0
    hits: int = 0
    #: requests being held right now (the operation has taken effect, the answer not yet sent)
    holding: int = 0
    _regex: re.Pattern[str] = field(init=False, repr=False)
    _released: threading.Event = field(init=False, repr=False, default_factory=threading.Event)

    def __post_init__(self) -> None:
        self.method = (self.method or "*").upper()
        self._regex = compile_pattern(self.path)
        if self.status is None and not self.drop and not self.hold and (self.perform or not self.delay):
            self.status = 503

    def release(self) -> None:
        """End the hold of every request this fault holds (and will hold) now."""
        self._released.set()

    async def wait_hold(self) -> None:
        """Hold an answer for ``hold`` seconds or until :meth:`release`."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.hold
        self.holding += 1
        try:
            while not self._released.is_set() and loop.time() < deadline:
                await asyncio.sleep(0.02)
        finally:
            self.holding -= 1

    def matches(self, method: str, path: str) -> bool:
        """True when this fault applies to the request."""
        return self.method in ("*", method.upper()) and bool(self._regex.match(path))

    @property
    def exhausted(self) -> bool:
        """True once it has affected ``times`` requests."""
        return self.times is not None and self.hits >= self.times

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Fault:
        """Build from the control API's camelCase JSON (snake_case keys are accepted too)."""
        aliases = {"retryAfter": "retry_after"}
        known = {
            "method",
            "path",
            "status",
            "times",
            "retry_after",
            "delay",
            "perform",
            "drop",
            "body",
            "headers",
            "hold",
        }
        kwargs: dict[str, Any] = {}
        for key, value in data.items():
            name = aliases.get(key, key)
            if name not in known:
                raise HttpError(
                    400, {"error": {"code": "BadRequest", "message": f"unknown fault field {key!r}"}}
                )
            kwargs[name] = value
        return cls(**kwargs)

    def to_json(self) -> dict[str, Any]:
        """camelCase JSON for the control API."""
        return {
            "method": self.method,
            "path": self.path,
            "status": self.status,
            "times": self.times,
            "retryAfter": self.retry_after,
            "delay": self.delay,
            "perform": self.perform,
            "drop": self.drop,
            "body": self.body,
            "headers": self.headers,
            "hold": self.hold,
            "hits": self.hits,
            "holding": self.holding,
        }

    def response(self) -> Response:
        """The injected error response."""
        status = self.status or 503
        headers: dict[str, str] = dict(self.headers or {})
        if self.retry_after is not None:
            value = self.retry_after
            if isinstance(value, float) and value.is_integer():
                value = int(value)
            headers["Retry-After"] = str(value)
        body = self.body
        if body is None:
            code = {429: "TooManyRequests", 500: "InternalServerError", 502: "BadGateway"}.get(
                status, "ServiceUnavailable" if status == 503 else f"Http{status}"
            )
            body = {"error": {"code": code, "message": f"Injected fault ({status})."}}
        return JSONResponse(body, status, headers=headers)


@dataclass
class Call:
    """One incoming request, as handlers see it."""

    request: Request
    params: dict[str, str]
    body: bytes
    claims: dict[str, Any] | None = None

    @property
    def query(self) -> QueryParams:
        """The query string parameters."""
        return self.request.query_params

    def query_value(self, *names: str) -> str | None:
        """First query parameter among ``names`` that is present (names compare case-insensitively)."""
        lowered = {key.lower(): value for key, value in self.query.multi_items()}
        for name in names:
            if name.lower() in lowered:
                return lowered[name.lower()]
        return None

    def json(self, *, required: bool = True) -> Any:
        """The parsed JSON body; ``400`` if it is not JSON (or missing when required)."""
        if not self.body.strip():
            if required:
                raise HttpError(400, problem(400, "A non-empty JSON request body is required."))
            return None
        try:
            return json.loads(self.body)
        except (ValueError, UnicodeDecodeError) as exc:
            raise HttpError(400, problem(400, f"The request body is not valid JSON: {exc}")) from exc


def problem(status: int, title: str, errors: Mapping[str, list[str]] | None = None) -> dict[str, Any]:
    """An ASP.NET Core style problem details body."""
    body: dict[str, Any] = {
        "type": "https://tools.ietf.org/html/rfc9110#section-15.5.1" if status == 400 else "about:blank",
        "title": title,
        "status": status,
    }
    if errors:
        body["errors"] = {key: list(value) for key, value in errors.items()}
    return body


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
        self.route("GET", "/_fake/requests", self._ctl_requests, control=True)
        self.route("DELETE", "/_fake/requests", self._ctl_clear_requests, control=True)
        self.route("GET", "/_fake/faults", self._ctl_faults, control=True)
        self.route("POST", "/_fake/faults", self._ctl_add_fault, control=True)
        self.route("DELETE", "/_fake/faults", self._ctl_clear_faults, control=True)
        self.route("POST", "/_fake/reset", self._ctl_reset, control=True)

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
        )
        with self.lock:
            self._faults.append(fault)
        return fault

    def clear_faults(self) -> None:
        """Remove every queued fault."""
        with self.lock:
            self._faults.clear()

    def faults(self) -> list[Fault]:
        """Faults still pending (a copy of the list)."""
        with self.lock:
            return list(self._faults)

    def _take_fault(self, method: str, path: str) -> Fault | None:
        with self.lock:
            for fault in self._faults:
                if fault.matches(method, path) and not fault.exhausted:
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

    @staticmethod
    def _summarise_claims(claims: Mapping[str, Any] | None) -> dict[str, Any] | None:
        if claims is None:
            return None
        return {key: claims.get(key) for key in ("aud", "oid", "appid")}

    def _record(self, call: Call, *, control: bool) -> dict[str, Any] | None:
        if control:
            return None
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
        entry: dict[str, Any] = {
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
                entry["auth"] = self._summarise_claims(call.claims)
        if drop:
            await self._drop(send)
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
            fault = self._take_fault(call.request.method, call.request.url.path)
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

    @staticmethod
    async def _drop(send: Send) -> None:
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

    # ----------------------------------------------------------------- control API
    async def _ctl_requests(self, call: Call) -> Response:
        method = call.query_value("method")
        path = call.query_value("path")
        return JSONResponse({"value": self.requests(method=method, path=path)})

    async def _ctl_clear_requests(self, call: Call) -> Response:
        self.clear_requests()
        return Response(status_code=204)

    async def _ctl_faults(self, call: Call) -> Response:
        return JSONResponse({"value": [fault.to_json() for fault in self.faults()]})

    async def _ctl_add_fault(self, call: Call) -> Response:
        data = call.json()
        items: Iterable[Any] = data if isinstance(data, list) else [data]
        added = []
        for item in items:
            if not isinstance(item, dict):
                raise HttpError(400, {"error": {"code": "BadRequest", "message": "a fault is a JSON object"}})
            try:
                fault = Fault.from_json(item)
            except (TypeError, ValueError, re.error) as exc:
                raise HttpError(400, {"error": {"code": "BadRequest", "message": str(exc)}}) from exc
            added.append(fault)
        with self.lock:
            self._faults.extend(added)
        return JSONResponse({"value": [fault.to_json() for fault in added]}, 201)

    async def _ctl_clear_faults(self, call: Call) -> Response:
        self.clear_faults()
        return Response(status_code=204)

    async def _ctl_reset(self, call: Call) -> Response:
        self.reset()
        return Response(status_code=204)
