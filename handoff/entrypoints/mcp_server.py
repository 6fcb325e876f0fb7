"""The broker's MCP server: the official ``mcp`` SDK's ``MCPServer`` over Streamable HTTP, served from an
HTTP-triggered function through ``func.AsgiMiddleware``.

Imported only when the first MCP request arrives (see :mod:`handoff.entrypoints.mcp_api`), so the SDK
and its dependencies stay out of the app's cold start.

Stateless, JSON responses: every POST carries one JSON-RPC message and gets one JSON answer, with no
session to keep between requests, so any instance of a scaled-out function app can answer any request
and the Functions host's buffered HTTP model fits (it cannot stream SSE).

The SDK's session manager must run inside a task group (its ``run()`` context, normally entered by the
Starlette app's lifespan) and can be run only once. ``AsgiMiddleware.handle_async`` sends no lifespan
events, so each request builds a fresh Streamable HTTP app and enters its session manager around that
one request. In stateless mode that is all the manager would do anyway: it makes a new transport and
server task per request, and exiting ``run()`` cancels whatever the request left behind.
"""

from __future__ import annotations

import contextvars
import functools
from collections.abc import Mapping
from typing import Any

import anyio.to_thread
import azure.functions as func
from mcp.server.mcpserver import MCPServer
from mcp.server.mcpserver.tools import Tool
from mcp.server.mcpserver.utilities.func_metadata import ArgModelBase, FuncMetadata
from mcp.server.transport_security import TransportSecuritySettings
from mcp_types import CallToolResult, TextContent, ToolAnnotations
from pydantic import ConfigDict
from starlette.responses import PlainTextResponse
from starlette.types import Receive, Scope, Send

from handoff import __version__
from handoff.bootstrap import get_handoffs
from handoff.entrypoints.mcp_tools import TOOLS, ToolSpec, allowed_hosts, call_tool
from handoff.entrypoints.responses import caller_of_headers, to_problem
from handoff.settings import Settings, get_settings

SERVER_NAME = "handoff-broker"
# Names every tool in TOOLS (tests/unit/test_mcp_server.py): a client that reads only the instructions
# still learns the whole surface.
INSTRUCTIONS = (
    "Hands an investigation from one Azure SRE Agent to another with structured context and brings the "
    "findings back into the first agent's thread. Typical use: handoff_list_agents to pick a target, "
    "handoff_history to see whether the problem was investigated before, handoff_create to hand off, "
    "handoff_get to follow up; the receiving agent answers with handoff_hand_back. handoff_list lists "
    "your handoffs newest first (by status, agent, alert rule, time); handoff_links lists the threads "
    "a thread is linked to by handoffs."
)
# The MCP function always runs at the function auth level (see mcp_api); the caller rule depends on it.
MCP_AUTH_LEVEL = "function"

# Headers of the HTTP request being served. Each request runs in its own task group (see the module
# docstring), whose tasks inherit this context, so a tool sees exactly its own request's headers.
_request_headers: contextvars.ContextVar[Mapping[str, str] | None] = contextvars.ContextVar(
    "mcp_request_headers", default=None
)


class _RawArguments(ArgModelBase):
    """Hands the tool its arguments untouched: the tool validates them with the REST models, so a bad
    argument is reported exactly as the REST API reports a bad field."""

    model_config = ConfigDict(extra="allow")

    def model_dump_one_level(self) -> dict[str, Any]:
        return {"arguments": dict(self.model_extra or {})}


def _tool(spec: ToolSpec) -> Tool:
    async def run(arguments: dict[str, Any]) -> CallToolResult:
        settings = get_settings()
        # App Service Authentication leaves /api/mcp alone unless the deployment says otherwise, so
        # principal headers there are believed only when HANDOFF_MCP_ENTRA_AUTH says it does not.
        caller = functools.partial(
            caller_of_headers,
            _request_headers.get() or {},
            MCP_AUTH_LEVEL,
            principals=settings.mcp_entra_auth,
        )
        instance = f"{settings.base_url}/api/mcp#{spec.name}"
        # Storage and agent calls block: run them off the event loop, as the SDK runs sync tools.
        outcome = await anyio.to_thread.run_sync(
            functools.partial(
                call_tool, spec, arguments, caller, get_handoffs, instance, to_problem, _request_headers.get()
            )
        )
        return CallToolResult(
            content=[TextContent(type="text", text=outcome.text)],
            structured_content=outcome.data,
            is_error=not outcome.ok,
        )

    return Tool(
        fn=run,
        name=spec.name,
        title=spec.title,
        description=spec.description,
        parameters=spec.input_schema(),
        # A published output schema only: the tool's result is the REST answer already, and clients
        # validate its structured content against the schema (the contract's status schema).
        fn_metadata=FuncMetadata(arg_model=_RawArguments, output_schema=spec.output_schema()),
        is_async=True,
        annotations=ToolAnnotations(
            title=spec.title,
            read_only_hint=spec.read_only,
            destructive_hint=False,
            idempotent_hint=spec.read_only,
            open_world_hint=not spec.read_only,
        ),
    )


def build_server() -> MCPServer:
    """The MCP server with the broker's tools."""
    return MCPServer(
        name=SERVER_NAME,
        version=__version__,
        instructions=INSTRUCTIONS,
        tools=[_tool(spec) for spec in TOOLS],
    )


def transport_security(settings: Settings) -> TransportSecuritySettings:
    """DNS-rebinding protection with the hosts this deployment is reached under."""
    hosts, origins = allowed_hosts(settings)
    return TransportSecuritySettings(
        enable_dns_rebinding_protection=True, allowed_hosts=hosts, allowed_origins=origins
    )


class McpAsgiApp:
    """ASGI app serving one MCP request per call, with the session manager run around it."""

    def __init__(self, server: MCPServer, security: TransportSecuritySettings) -> None:
        self.server = server
        self.security = security

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return  # no lifespan: AsgiMiddleware never sends one, and nothing here needs it
        if scope["method"] != "POST":
            # Stateless: no session to DELETE and no server-initiated stream to GET. The spec's answer is
            # 405; the SDK would open an event stream that never ends, and the Functions host buffers it.
            await PlainTextResponse("Method Not Allowed", 405, headers={"Allow": "POST"})(
                scope, receive, send
            )
            return
        headers = {key.decode("latin-1").lower(): value.decode("latin-1") for key, value in scope["headers"]}
        token = _request_headers.set(headers)
        try:
            # The Functions host has routed the request already; serve it at whatever path it came in.
            app = self.server.streamable_http_app(
                streamable_http_path=scope["path"] or "/",
                json_response=True,
                stateless_http=True,
                transport_security=self.security,
            )
            # Read right after building (no await in between): the manager of this request's app.
            manager = self.server.session_manager
            async with manager.run():
                await app(scope, receive, send)
        finally:
            _request_headers.reset(token)


@functools.lru_cache(maxsize=1)
def get_middleware() -> func.AsgiMiddleware:
    """The process-wide middleware wrapping the MCP app (built on the first MCP request)."""
    return func.AsgiMiddleware(McpAsgiApp(build_server(), transport_security(get_settings())))
