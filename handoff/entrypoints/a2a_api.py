"""A2A endpoint: the JSON-RPC binding at ``/api/a2a`` and the agent card beside it.

Both routes hand the request to ``a2a-sdk``'s own Starlette routes through ``func.AsgiMiddleware``
(see :mod:`handoff.entrypoints.a2a_server`). The caller is checked first by the same ``handle()`` as the REST
API (401 problem when App Service Authentication found no principal); the card is public.
"""

from __future__ import annotations

import asyncio

import azure.functions as func

from handoff.domain.auth import Caller
from handoff.domain.intake import check_rpc_body
from handoff.entrypoints.a2a_server import CARD_PATH, ROUTE
from handoff.entrypoints.responses import REST_AUTH_LEVEL, handle

bp = func.Blueprint()


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
