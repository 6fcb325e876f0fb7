"""The ``/_fake/`` control endpoints every simulated service has: request log, faults and reset.

They need no token and are neither recorded nor subject to faults, so a test (or another process)
can always inspect and steer a fake.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from starlette.responses import JSONResponse, Response

from devserver.fakes._faults import Fault
from devserver.fakes._http import Call, HttpError

if TYPE_CHECKING:
    from devserver.fakes._service import FakeService


class ServiceControlRoutes:
    """``/_fake/requests``, ``/_fake/faults`` and ``/_fake/reset`` of one service."""

    def __init__(self, service: FakeService) -> None:
        """Handlers driving ``service``; :meth:`register` adds them to its routes."""
        self.service = service

    def register(self) -> None:
        """Add the endpoints to the service as control routes (before any of its own routes)."""
        route = self.service.route
        route("GET", "/_fake/requests", self.list_requests, control=True)
        route("DELETE", "/_fake/requests", self.clear_requests, control=True)
        route("GET", "/_fake/faults", self.list_faults, control=True)
        route("POST", "/_fake/faults", self.add_faults, control=True)
        route("DELETE", "/_fake/faults", self.clear_faults, control=True)
        route("POST", "/_fake/reset", self.reset, control=True)

    async def list_requests(self, call: Call) -> Response:
        """Recorded requests, optionally filtered by ``method`` and ``path`` pattern."""
        method = call.query_value("method")
        path = call.query_value("path")
        return JSONResponse({"value": self.service.requests(method=method, path=path)})

    async def clear_requests(self, call: Call) -> Response:
        """Forget the recorded requests."""
        self.service.clear_requests()
        return Response(status_code=204)

    async def list_faults(self, call: Call) -> Response:
        """Faults still pending."""
        return JSONResponse({"value": [fault.to_json() for fault in self.service.faults()]})

    async def add_faults(self, call: Call) -> Response:
        """Queue one fault (a JSON object) or several (an array); none is queued if one is invalid."""
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
        self.service.add_faults(added)
        return JSONResponse({"value": [fault.to_json() for fault in added]}, 201)

    async def clear_faults(self, call: Call) -> Response:
        """Remove every queued fault."""
        self.service.clear_faults()
        return Response(status_code=204)

    async def reset(self, call: Call) -> Response:
        """Back to a clean state (the service's own :meth:`~FakeService.reset`)."""
        self.service.reset()
        return Response(status_code=204)
