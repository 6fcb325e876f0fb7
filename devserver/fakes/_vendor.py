"""Common part of the simulated incident and work-tracking services (GitHub, PagerDuty, ServiceNow, Jira).

Each answers with the vendor's rate-limit headers on every response (faults included), checks every
request against the vendor's published operation before anything else happens, and keeps its data in
memory behind the base class's lock.
"""

from __future__ import annotations

import base64
import itertools
import time
from collections.abc import Mapping
from typing import Any

from starlette.responses import Response

from devserver.fakes._service import Call, FakeService, HttpError, _Route
from devserver.fakes.openapi_check import OpenApiSpec


class VendorFake(FakeService):
    """A :class:`FakeService` with a vendor document, rate-limit headers and common checks."""

    spec_file: str | None = None

    def __init__(self) -> None:
        super().__init__()
        self.spec = OpenApiSpec(self.spec_file) if self.spec_file else None
        self._ids = itertools.count(1)
        self.rejected: list[dict[str, Any]] = []

    def next_id(self) -> int:
        """A fresh numeric id."""
        with self.lock:
            return next(self._ids)

    def rate_limit_headers(self) -> dict[str, str]:
        """Headers added to every answer (the vendor's rate-limit headers)."""
        return {}

    async def _dispatch(
        self, call: Call, route: _Route | None, allowed: list[str], entry: dict[str, Any] | None
    ) -> tuple[Response, bool]:
        response, drop = await super()._dispatch(call, route, allowed, entry)
        if route is not None and not route.control:
            for key, value in self.rate_limit_headers().items():
                if key.lower() not in {k.lower() for k in response.headers}:
                    response.headers[key] = value
        return response, drop

    def check(self, call: Call, *, status: int, shape: Any) -> tuple[Any, dict[str, str]]:
        """Check ``call`` against the vendor operation; answers ``status`` with ``shape(errors)`` when
        it does not conform. Returns the parsed body and the operation's path parameters."""
        assert self.spec is not None
        path = call.request.url.path
        found = self.spec.match(call.request.method, path)
        if found is None:
            self._reject(call, [f"{call.request.method} {path} is not a documented operation"])
            raise HttpError(404, shape([f"{call.request.method} {path} is not a documented operation"]))
        op, params = found
        body: Any = None
        has_body = bool(call.body.strip())
        if has_body:
            body = call.json()
        errors = self.spec.check_request(
            op, params, dict(call.query.items()), dict(call.request.headers.items()), body, has_body
        )
        if errors:
            self._reject(call, errors)
            raise HttpError(status, shape(errors))
        return body, params

    def _reject(self, call: Call, errors: list[str]) -> None:
        with self.lock:
            self.rejected.append(
                {"method": call.request.method, "path": call.request.url.path, "errors": errors}
            )

    def reset(self) -> None:
        """Clear faults, recorded requests and rejections (subclasses clear their data too)."""
        super().reset()
        with self.lock:
            self.rejected.clear()


def basic_credentials(header: str | None) -> tuple[str, str] | None:
    """``(user, password)`` of a Basic ``Authorization`` header, or None."""
    if not header or not header.startswith("Basic "):
        return None
    try:
        user, _, password = base64.b64decode(header[6:]).decode().partition(":")
    except (ValueError, UnicodeDecodeError):
        return None
    return user, password


def require_header(
    headers: Mapping[str, str], name: str, error: HttpError, accept: tuple[str, ...] = ()
) -> None:
    """Raise ``error`` when ``name`` is missing (or, with ``accept``, holds none of those values)."""
    value = headers.get(name)
    if value is None or (accept and not any(a in value for a in accept)):
        raise error


def epoch() -> int:
    """Now as whole UTC epoch seconds."""
    return int(time.time())
