"""HTTP basics shared by the simulated services: requests as handlers see them, errors, path patterns."""

from __future__ import annotations

import json
import re
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from starlette.datastructures import QueryParams
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

Scope = dict[str, Any]
Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]


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
