"""Routes of the protocol surfaces (MCP, A2A) and of the broker itself (this document, health)."""

from __future__ import annotations

from typing import Any

from handoff.domain.models import Health
from handoff.entrypoints.mcp_tools import TOOLS
from handoff.entrypoints.openapi.parts import (
    NOT_JSON,
    RPC_TOO_LARGE,
    TOO_DEEP,
    json_response,
    object_response,
    problem,
)

MCP = {
    "operationId": "mcp",
    "summary": "MCP server (Streamable HTTP, stateless, JSON responses) with the handoff tools",
    "description": "One JSON-RPC message per POST (initialize, ping, tools/list, tools/call); "
    f"the {len(TOOLS)} tools {', '.join(spec.name for spec in TOOLS)} take the same schemas as the "
    "REST bodies and queries. Always needs a function key in Azure. See docs/mcp.md.",
    "requestBody": {
        "required": True,
        "content": {"application/json": {"schema": {"type": "object"}}},
    },
    "responses": {
        "200": object_response(
            "JSON-RPC answer; a refused tool call is a result with isError "
            "and the problem's title, detail and field errors"
        ),
        "202": {"description": "A JSON-RPC notification or response: taken, nothing to answer"},
        "400": object_response(
            "Not JSON, not a JSON-RPC message, or an unsupported MCP-Protocol-Version (a JSON-RPC error)"
        ),
        "403": {"description": "Origin header not allowed"},
        "405": {"description": "GET and DELETE: no sessions or server streams (stateless)"},
        "406": {"description": "Accept does not include application/json"},
        "413": problem(RPC_TOO_LARGE),
        "415": NOT_JSON,
        "421": {"description": "Host header not allowed (DNS-rebinding protection)"},
        "422": problem(TOO_DEEP),
    },
}

A2A = {
    "operationId": "a2aJsonRpc",
    "summary": "A2A v1.0 JSON-RPC: SendMessage (a HandoffRequest as the data part), GetTask",
    "description": "Send the A2A-Version: 1.0 header. SendMessage answers at once with a task "
    "whose id is the handoff id (the message id is the idempotency key); GetTask reports the "
    "handoff: SUBMITTED, WORKING, COMPLETED (the hand-back as an artifact), FAILED, REJECTED, "
    "CANCELED or INPUT_REQUIRED. Errors are JSON-RPC errors whose data carries the problem "
    "details with field pointers. See docs/a2a.md.",
    "requestBody": {
        "required": True,
        "content": {"application/json": {"schema": {"type": "object", "required": ["jsonrpc", "method"]}}},
    },
    "responses": {
        "200": object_response("JSON-RPC response (result or error)"),
        "401": problem("No Entra principal (anonymous functions behind App Service Authentication)"),
        "413": problem(RPC_TOO_LARGE),
        "415": NOT_JSON,
        "422": problem(TOO_DEEP),
    },
}

PUSH_ANSWER = {
    "type": "object",
    "required": ["status"],
    "properties": {
        "status": {"type": "string", "enum": ["queued", "ignored"]},
        "reason": {"type": "string"},
    },
}

A2A_PUSH = {
    "operationId": "a2aPushNotification",
    "security": [],
    "summary": "A partner's A2A push notification about the task of a handoff the broker handed it",
    "description": "Registered by the broker in its SendMessage (configuration.taskPushNotificationConfig) "
    "when the partner's agent card declares capabilities.pushNotifications. Runs at anonymous auth "
    "level: the credential is the handoff's own token (HMAC-SHA256 of the handoff id under a broker "
    "secret) in X-A2A-Notification-Token (or Authorization: Bearer). The body is an A2A v1.0 "
    "StreamResponse (task, statusUpdate, artifactUpdate or message; a v0.3 task or status-update "
    "event is read too). It is a hint: a state that ends the task (completed, failed, canceled, "
    "rejected, input-required) queues a GetTask of the task at once; the hand-back is recorded once "
    "however often a notification comes. See docs/a2a.md.",
    "parameters": [
        {"name": "handoffId", "in": "path", "required": True, "schema": {"type": "string", "format": "uuid"}},
        {
            "name": "X-A2A-Notification-Token",
            "in": "header",
            "required": False,
            "schema": {"type": "string", "maxLength": 200},
        },
    ],
    "requestBody": {
        "required": True,
        "content": {"application/json": {"schema": {"type": "object"}}},
    },
    "responses": {
        "202": {
            "description": "The notification says the task ended: the broker looks at it now",
            "content": {"application/json": {"schema": PUSH_ANSWER}},
        },
        "200": {
            "description": "Taken, nothing to do: a state that does not end the task, or a handoff "
            "no longer waiting for it (a repeat)",
            "content": {"application/json": {"schema": PUSH_ANSWER}},
        },
        "400": problem("Not JSON"),
        "401": problem("Token missing or not this handoff's (logged in the security log); nothing changes"),
        "404": problem("No such handoff"),
        "413": problem("Body larger than 1 MiB"),
        "415": NOT_JSON,
        "422": problem("Not an A2A push notification, or about another task; the field is named"),
        "503": problem("Storage unavailable"),
    },
}

AGENT_CARD = {
    "operationId": "a2aAgentCard",
    "security": [],
    "summary": "The broker's A2A agent card; its interface URL is /api/a2a",
    "responses": {"200": object_response("Agent card (A2A v1.0)")},
}

OPENAPI_DOCUMENT = {
    "operationId": "getOpenApiDocument",
    "security": [],
    "summary": "This document",
    "responses": {"200": object_response("OpenAPI 3.1")},
}

HEALTH = {
    "operationId": "health",
    "security": [],
    "responses": {
        "200": json_response(Health, "Storage reachable"),
        "503": json_response(Health, "Storage unreachable"),
    },
}

PROTOCOL_PATHS: dict[str, dict[str, Any]] = {
    "/api/mcp": {"post": MCP},
    "/api/a2a": {"post": A2A},
    "/api/a2a/.well-known/agent-card.json": {"get": AGENT_CARD},
    "/api/a2a/push/{handoffId}": {"post": A2A_PUSH},
}
BROKER_PATHS: dict[str, dict[str, Any]] = {
    "/api/openapi.json": {"get": OPENAPI_DOCUMENT},
    "/api/health": {"get": HEALTH},
}
