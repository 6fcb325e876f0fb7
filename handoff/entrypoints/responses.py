"""The one mapping from service results and errors to HTTP responses."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Mapping
from typing import Any
from urllib.parse import quote, urlsplit

import azure.functions as func
from pydantic import BaseModel

from handoff.adapters.telemetry import from_caller, span
from handoff.domain.auth import UNKNOWN_KEY, Caller, caller_from_headers
from handoff.domain.errors import (
    PROBLEM_CONTENT_TYPE,
    InternalError,
    Problem,
    ServiceUnavailable,
    Unauthorized,
)
from handoff.domain.intake import check_json_content_type
from handoff.domain.log_lines import reason_text
from handoff.ports import StorageLayoutMismatch, StorageUnavailable
from handoff.settings import get_settings

log = logging.getLogger("handoff")


def json_response(
    body: BaseModel | dict[str, Any], status: int = 200, headers: dict[str, str] | None = None
) -> func.HttpResponse:
    """A JSON response; models are written camelCase without unset fields."""
    data = (
        body.model_dump(mode="json", by_alias=True, exclude_none=True)
        if isinstance(body, BaseModel)
        else body
    )
    return func.HttpResponse(
        json.dumps(data, ensure_ascii=False), status_code=status, headers=headers, mimetype="application/json"
    )


def problem_response(problem: Problem, instance: str | None = None) -> func.HttpResponse:
    """An RFC 9457 ``application/problem+json`` response."""
    return func.HttpResponse(
        json.dumps(problem.to_json(instance), ensure_ascii=False),
        status_code=problem.status,
        headers=problem.headers or None,
        mimetype=PROBLEM_CONTENT_TYPE,
    )


# REST functions run at the auth level the deployment chose: function keys, or anonymous behind App
# Service Authentication (then every caller must bring an Entra token; see docs/deploy.md).
REST_AUTH_LEVEL = func.AuthLevel(get_settings().http_auth_level)


def caller_of(req: func.HttpRequest, *, rate_limited: bool = True) -> Caller:
    """The caller of an HTTP request (see :func:`handoff.domain.auth.caller_from_headers`)."""
    return caller_of_headers(dict(req.headers), get_settings().http_auth_level, rate_limited=rate_limited)


def caller_of_headers(
    headers: Mapping[str, str], auth_level: str, *, rate_limited: bool = True, principals: bool = True
) -> Caller:
    """The caller of a request with these headers, served by a function at ``auth_level``, within its
    rate limit (429 otherwise).

    The one rule for every HTTP entrypoint: REST functions run at the deployment's auth level, the MCP
    function always at ``function`` (see :mod:`handoff.entrypoints.mcp_api`).
    """
    from handoff.bootstrap import get_keyring, get_rate_limiter

    settings = get_settings()
    try:
        caller = caller_from_headers(
            dict(headers),
            in_azure=bool(settings.website_hostname),
            keys_enforced=auth_level == "function",
            easy_auth=settings.website_auth_enabled and principals,
            keys=get_keyring(),
        )
    except Unauthorized:
        # Guessing keys costs from one shared budget, so it cannot be free load.
        get_rate_limiter().check(UNKNOWN_KEY)
        raise
    if rate_limited:
        get_rate_limiter().check(caller)
    return caller


def to_problem(exc: Exception, instance: str) -> Problem:
    """The problem to answer for an exception: problems as they are, unreachable storage as 503,
    anything else as a 500 that reveals nothing internal (the exception is logged)."""
    if isinstance(exc, Problem):
        return exc
    if isinstance(exc, StorageLayoutMismatch):
        # What storage holds and what to do: the operator's to read (logged once, at the first call).
        return ServiceUnavailable(str(exc), headers={"Retry-After": "60"})
    if isinstance(exc, StorageUnavailable):
        # The cause is the SDK error's class, storage's status or the write that kept conflicting, never a
        # URL (a SAS token may be in one); on one line, whatever the keys it names hold.
        log.warning("storage unavailable while serving %s (%s)", instance, reason_text(exc))
        return ServiceUnavailable("storage is unavailable; retry later", headers={"Retry-After": "10"})
    log.error("unhandled error serving %s", instance, exc_info=exc)
    return InternalError("an unexpected error occurred; it has been logged")


def handle(
    req: func.HttpRequest,
    action: Callable[[Caller], func.HttpResponse],
    *,
    public: bool = False,
    rate_limited: bool = True,
) -> func.HttpResponse:
    """Identify the caller and run ``action(caller)``; map problems to their status, unreachable
    storage to 503, anything else to a 500 problem that reveals nothing internal. ``public`` routes
    (health, OpenAPI) need no caller; routes that are not ``rate_limited`` (alerts, which have their
    own storm handling) skip the per-caller budget. A POST body must be labelled JSON (415 otherwise),
    checked once the caller is known and before anything reads it.

    The request runs in a server span that continues the caller's W3C trace (its ``traceparent``, as
    :func:`~handoff.adapters.telemetry.from_caller` takes it),
    and every client error is logged once, as one line (:func:`client_error_line`)."""
    instance = req.url.split("?", 1)[0]
    route = route_of(req)
    attributes = {"http.request.method": req.method, "http.route": route}
    with span(f"{req.method} {route}", attributes, kind="server", parent=from_caller(req.headers)) as current:
        try:
            caller = Caller("local") if public else caller_of(req, rate_limited=rate_limited)
            if req.method == "POST":
                check_json_content_type(req.headers.get("Content-Type"), req.get_body())
            response = action(caller)
        except Exception as exc:
            problem = to_problem(exc, instance)
            if 400 <= problem.status < 500:
                log.info("%s", client_error_line(req.method, route, problem))
            response = problem_response(problem, instance)
        current.set({"http.response.status_code": response.status_code})
        if response.status_code >= 500:
            current.fail(str(response.status_code))
        return response


CLIENT_ERROR_LOG_PREFIX = "client error:"
_ROUTE_CHARS = 200


def client_error_line(method: str, route: str, problem: Problem) -> str:
    """``client error: POST /api/handoffs answered 400 (Bad Request)``: the method, the route, the
    status and the problem's title; never the body, the query or the detail (which may quote input)."""
    return f"{CLIENT_ERROR_LOG_PREFIX} {method} {route} answered {problem.status} ({problem.title})"


def route_of(req: func.HttpRequest) -> str:
    """The request's path with each route parameter written as ``{name}`` (so ids make no new span
    names), without the query; cut to a couple of hundred characters."""
    path = urlsplit(req.url).path
    names = {quote(str(value), safe=""): name for name, value in (req.route_params or {}).items() if value}
    segments = ["{" + names[segment] + "}" if segment in names else segment for segment in path.split("/")]
    return "/".join(segments)[:_ROUTE_CHARS]
