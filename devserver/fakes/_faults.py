"""Faults the simulated services can be told to inject: error answers, delays, holds and drops."""

from __future__ import annotations

import asyncio
import re
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from starlette.responses import JSONResponse, Response

from devserver.fakes._http import HttpError, compile_pattern


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
    * ``body_contains``: only requests whose body holds this text (a test's own handoff id, say, so that
      work left over from other tests cannot use the fault up).
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
    body_contains: str | None = None
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

    def matches(self, method: str, path: str, body: bytes = b"") -> bool:
        """True when this fault applies to the request."""
        if self.body_contains is not None and self.body_contains.encode() not in body:
            return False
        return self.method in ("*", method.upper()) and bool(self._regex.match(path))

    @property
    def exhausted(self) -> bool:
        """True once it has affected ``times`` requests."""
        return self.times is not None and self.hits >= self.times

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Fault:
        """Build from the control API's camelCase JSON (snake_case keys are accepted too)."""
        aliases = {"retryAfter": "retry_after", "bodyContains": "body_contains"}
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
            "body_contains",
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
            "bodyContains": self.body_contains,
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
