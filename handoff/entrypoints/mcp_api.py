"""The MCP endpoint, ``/api/mcp``: how SRE Agents call the broker as tools (see docs/mcp.md).

The function always runs at the ``function`` auth level, whatever ``HANDOFF_HTTP_AUTH_LEVEL`` says: an SRE
Agent MCP connector sends static headers, so in Azure the function key (``x-functions-key``) is what
authenticates it; the path is excluded from App Service Authentication by default (docs/deploy.md).

The MCP SDK is imported inside the function, on the first MCP request, so importing ``function_app``
stays cheap.
"""

from __future__ import annotations

import azure.functions as func

from handoff.domain.errors import Problem
from handoff.domain.intake import check_json_content_type, check_rpc_body
from handoff.entrypoints.mcp_tools import MCP_ROUTE
from handoff.entrypoints.responses import problem_response

bp = func.Blueprint()


@bp.route(route=MCP_ROUTE, methods=["GET", "POST", "DELETE"], auth_level=func.AuthLevel.FUNCTION)
async def mcp(req: func.HttpRequest, context: func.Context) -> func.HttpResponse:
    """MCP Streamable HTTP (stateless, JSON responses): POST carries JSON-RPC; GET and DELETE answer
    405, as a server without sessions or server-initiated streams does."""
    from handoff.entrypoints.mcp_server import get_middleware

    if req.method == "POST":
        # Before the SDK parses it: a body nested thousands deep must be a 4xx, not a recursion error;
        # a body that is not labelled JSON is 415, as on every other POST route.
        try:
            check_json_content_type(req.headers.get("Content-Type"), req.get_body())
            check_rpc_body(req.get_body())
        except Problem as problem:
            return problem_response(problem, req.url.split("?", 1)[0])
    response: func.HttpResponse = await get_middleware().handle_async(req, context)
    return response
