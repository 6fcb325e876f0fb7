"""The one mapping from service results and errors to HTTP responses."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from typing import Any

import azure.functions as func
from pydantic import BaseModel

from handoff.auth import Caller, caller_from_headers
from handoff.errors import PROBLEM_CONTENT_TYPE, InternalError, Problem, ServiceUnavailable
from handoff.service import StorageUnavailable
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


def caller_of(req: func.HttpRequest) -> Caller:
    """The caller of an HTTP request (see :func:`handoff.auth.caller_from_headers`)."""
    settings = get_settings()
    return caller_from_headers(
        dict(req.headers),
        in_azure=bool(settings.website_hostname),
        keys_enforced=settings.http_auth_level == "function",
    )


def handle(
    req: func.HttpRequest, action: Callable[[Caller], func.HttpResponse], *, public: bool = False
) -> func.HttpResponse:
    """Identify the caller and run ``action(caller)``; map problems to their status, unreachable
    storage to 503, anything else to a 500 problem that reveals nothing internal. ``public`` routes
    (health, OpenAPI) need no caller."""
    instance = req.url.split("?", 1)[0]
    try:
        return action(Caller("local") if public else caller_of(req))
    except Problem as problem:
        return problem_response(problem, instance)
    except StorageUnavailable:
        log.warning("storage unavailable while serving %s", instance)
        return problem_response(
            ServiceUnavailable("storage is unavailable; retry later", headers={"Retry-After": "10"}), instance
        )
    except Exception:
        log.exception("unhandled error serving %s", instance)
        return problem_response(InternalError("an unexpected error occurred; it has been logged"), instance)
