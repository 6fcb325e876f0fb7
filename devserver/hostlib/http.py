"""The HTTP part of the local host: an ASGI app that routes requests to the HTTP-triggered functions."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterable
from typing import Any

import azure.functions as func
from azure.functions import _abc as func_abc
from starlette.requests import Request

from devserver.hostlib.functions import HttpFunction
from devserver.hostlib.invocation import HostServices, InvocationError
from devserver.hostlib.routes import precedence_key

log = logging.getLogger("Host.Function")

# The Functions host rejects request bodies over 100 MB (maxRequestBodySize); so does this one.
MAX_REQUEST_BODY = 104_857_600
# Kestrel, under the Functions host, answers 414 to a request line over 8 KiB (MaxRequestLineSize) and
# 431 to more than 32 KiB of headers (MaxRequestHeadersTotalSize); so does this one, as problem+json.
MAX_REQUEST_TARGET = 8192
MAX_REQUEST_HEADERS = 32768
# The HTTP parser buffers this much of an incomplete request, so that a request over the limits above
# still reaches the checks that answer it (rather than a bare 400 from the parser).
MAX_INCOMPLETE_REQUEST = 1024 * 1024
HTTP_REASON = "This function was programmatically called via the host APIs."

Headers = list[tuple[bytes, bytes]]
Receive = Callable[..., Any]
Send = Callable[..., Any]


class HttpTriggerApp:
    """ASGI app serving the HTTP functions under their routes, with the host's 404/405 answers."""

    def __init__(self, host: HostServices, functions: Iterable[HttpFunction]) -> None:
        """``functions`` are tried in route precedence order, as the host's router does."""
        self.host = host
        self.functions = sorted(functions, key=lambda spec: precedence_key(spec.route))

    async def __call__(self, scope: dict[str, Any], receive: Receive, send: Send) -> None:
        """ASGI entry point."""
        if scope["type"] != "http":
            return
        if await refuse_oversized(scope, send):
            return
        method = scope["method"].upper()
        path = scope["path"].lstrip("/")
        allowed: set[str] = set()
        for spec in self.functions:
            route_params = spec.route.match(path)
            if route_params is None:
                continue
            if method in spec.methods:
                await self._handle(spec, route_params, scope, receive, send)
                return
            allowed |= spec.methods
        if allowed:
            await send_plain(
                send, 405, b"Method Not Allowed", [(b"allow", ", ".join(sorted(allowed)).encode())]
            )
        elif path == "" and method in ("GET", "HEAD"):
            # func start answers the site root with a splash page; a plain line is enough here.
            await send_plain(send, 200, b"Your Functions app is up and running (local host).")
        elif path.lower() == "admin/host/status" and method == "GET":
            await send_plain(
                send, 200, json.dumps({"state": "Running"}).encode(), content_type=b"application/json"
            )
        else:
            await send_plain(send, 404, b"Not Found")

    async def _handle(
        self,
        spec: HttpFunction,
        route_params: dict[str, str],
        scope: dict[str, Any],
        receive: Receive,
        send: Send,
    ) -> None:
        request = Request(scope, receive)
        chunks: list[bytes] = []
        size = 0
        async for chunk in request.stream():
            size += len(chunk)
            if size > MAX_REQUEST_BODY:
                await send_plain(send, 413, b"Request body too large")
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
            result = await self.host.invoke(spec, req, HTTP_REASON)
            status, response_headers, body = to_http_response(result)
        except InvocationError:
            await send_plain(send, 500, b"Internal Server Error: the function failed; see the host log")
            return
        except TypeError as exc:
            log.error("Function '%s' returned an unsupported value: %s", spec.name, exc)
            await send_plain(send, 500, b"Internal Server Error: the function returned an unsupported value")
            return
        await send({"type": "http.response.start", "status": status, "headers": response_headers})
        await send({"type": "http.response.body", "body": b"" if scope["method"] == "HEAD" else body})


async def refuse_oversized(scope: dict[str, Any], send: Send) -> bool:
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
    await send_plain(send, status, body.encode(), content_type=b"application/problem+json")
    return True


async def send_plain(
    send: Send,
    status: int,
    body: bytes,
    extra: Headers | None = None,
    content_type: bytes = b"text/plain; charset=utf-8",
) -> None:
    """Send a complete response of the host itself (not of a function)."""
    headers = [(b"content-type", content_type), (b"content-length", str(len(body)).encode()), *(extra or [])]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


def to_http_response(result: Any) -> tuple[int, Headers, bytes]:
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
