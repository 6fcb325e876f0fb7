"""A2A endpoints: the JSON-RPC binding at ``/api/a2a``, the agent card beside it, and the push
notifications partners send about the tasks the broker handed them (``/api/a2a/push/{handoffId}``).

The first two hand the request to ``a2a-sdk``'s own Starlette routes through ``func.AsgiMiddleware``
(see :mod:`handoff.entrypoints.a2a_server`). The caller is checked first by the same ``handle()`` as the REST
API (401 problem when App Service Authentication found no principal); the card is public. Push
notifications come from partners that cannot send the broker's keys: that function runs at ``anonymous``
auth level whatever the deployment chose, and a notification is authenticated by the handoff's own token
alone (:mod:`handoff.services.a2a_push`).
"""

from __future__ import annotations

import asyncio
from functools import lru_cache

import azure.functions as func

from handoff.domain.auth import Caller
from handoff.domain.intake import check_rpc_body
from handoff.entrypoints.a2a_server import CARD_PATH, ROUTE
from handoff.entrypoints.responses import REST_AUTH_LEVEL, handle, json_response
from handoff.services.a2a_push import PUSH_ROUTE, PushReceiver

bp = func.Blueprint()


@lru_cache(maxsize=1)
def get_push_receiver() -> PushReceiver:
    """The push receiver over the handoffs' context (built on first use)."""
    from handoff.bootstrap import get_handoffs

    return PushReceiver(get_handoffs().context)


def _serve(req: func.HttpRequest, context: func.Context) -> func.HttpResponse:
    from handoff.entrypoints.a2a_server import get_a2a_app

    # Functions run synchronous handlers on worker threads without an event loop: give the ASGI
    # app a loop of its own for this request.
    response: func.HttpResponse = asyncio.run(func.AsgiMiddleware(get_a2a_app()).handle_async(req, context))
    return response


@bp.route(route=ROUTE, methods=["POST"], auth_level=REST_AUTH_LEVEL)
def a2a_rpc(req: func.HttpRequest, context: func.Context) -> func.HttpResponse:
    """A2A JSON-RPC (``SendMessage``, ``GetTask``); A2A-Version 1.0."""

    def action(_caller: Caller) -> func.HttpResponse:
        check_rpc_body(req.get_body())  # before the SDK parses it (size and nesting depth)
        return _serve(req, context)

    return handle(req, action)


@bp.route(route=f"{ROUTE}/{CARD_PATH}", methods=["GET"], auth_level=func.AuthLevel.ANONYMOUS)
def a2a_agent_card(req: func.HttpRequest, context: func.Context) -> func.HttpResponse:
    """The broker's A2A agent card (public, like every agent card)."""
    return handle(req, lambda _caller: _serve(req, context), public=True)


@bp.route(route=f"{PUSH_ROUTE}/{{handoffId}}", methods=["POST"], auth_level=func.AuthLevel.ANONYMOUS)
def a2a_push_notification(req: func.HttpRequest) -> func.HttpResponse:
    """A partner's push notification about the task of a handoff: 202 when the task is looked at now,
    200 when there is nothing to do."""

    def action(_: Caller) -> func.HttpResponse:
        answer, status = get_push_receiver().receive(
            req.route_params.get("handoffId", ""), dict(req.headers), req.get_body()
        )
        return json_response(answer, status)

    # No caller headers to check: the token is the credential (checked by the service).
    return handle(req, action, public=True)
