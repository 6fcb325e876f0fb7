"""OpenAPI 3.1 document generated from the wire models, so the document cannot drift from the code."""

from __future__ import annotations

from functools import lru_cache
from typing import Any

from pydantic import BaseModel
from pydantic.json_schema import models_json_schema

from handoff.domain.audit import AuditVerification
from handoff.domain.errors import ProblemDetails
from handoff.domain.intake import ENVELOPE_DEPTH, MAX_DEPTH, MAX_RPC_BODY_BYTES
from handoff.domain.messages import OUTCOME_LABELS
from handoff.domain.models import (
    PATH_SEGMENT_MAX,
    PATH_SEGMENT_PATTERN,
    AuditLog,
    HandbackRequest,
    HandoffRequest,
    HandoffView,
    Health,
    ThreadLinks,
)
from handoff.services.alerts import AlertReceipt

REF = "#/components/schemas/{model}"


def _ref(model: type[BaseModel]) -> dict[str, str]:
    return {"$ref": REF.format(model=model.__name__)}


def _json(model: type[BaseModel], description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": _ref(model)}}}


def _problem(description: str) -> dict[str, Any]:
    return {
        "description": description,
        "content": {"application/problem+json": {"schema": _ref(ProblemDetails)}},
    }


_ID = {"name": "id", "in": "path", "required": True, "schema": {"type": "string", "format": "uuid"}}
_IDEMPOTENCY_KEY = {
    "name": "Idempotency-Key",
    "in": "header",
    "required": False,
    "schema": {"type": "string", "maxLength": 200},
}
_COMMON_ERRORS = {"404": _problem("No such handoff"), "503": _problem("Storage unavailable")}
_RETRY_ANSWER = {
    "type": "object",
    "required": ["handoffId", "status", "retried"],
    "properties": {
        "handoffId": {"type": "string"},
        "status": {"type": "string"},
        "retried": {
            "type": "array",
            "items": {
                "type": "object",
                "required": ["step"],
                "properties": {
                    "step": {"type": "string", "enum": ["delivery", "crossLink", "handBack"]},
                    "seq": {"type": "integer"},
                },
            },
        },
    },
}
# A thread id is one URL path segment (handoff.domain.models.PathSegmentId).
_THREAD_ID = {
    "type": "string",
    "minLength": 1,
    "maxLength": PATH_SEGMENT_MAX,
    "pattern": PATH_SEGMENT_PATTERN,
}
_BAD_THREAD_ID = _problem("threadId is not one URL path segment")
_TOO_LARGE = "Body larger than 262,144 bytes, or than a storage entity holds once stored"
_BREAKS = (
    f"Body breaks the schema or the intake limits (nested deeper than {MAX_DEPTH} levels, a lone "
    "UTF-16 surrogate, NaN or a number too large); errors name the fields"
)
_TOO_DEEP = (
    f"Nested deeper than {MAX_DEPTH} levels of arrays and objects (plus the JSON-RPC envelope's "
    f"{ENVELOPE_DEPTH}); checked before the body is parsed"
)


@lru_cache(maxsize=1)
def openapi_document() -> dict[str, Any]:
    """The API description (routes, request and response schemas, problem responses)."""
    from handoff.domain.history import HistoryPage
    from handoff.services.queries import AUDIT_PAGE

    models = [
        HandoffRequest,
        HandbackRequest,
        HandoffView,
        AuditLog,
        AuditVerification,
        ThreadLinks,
        Health,
        ProblemDetails,
        AlertReceipt,
        HistoryPage,
    ]
    _, schema = models_json_schema(
        [
            (model, "validation" if model in (HandoffRequest, HandbackRequest) else "serialization")
            for model in models
        ],
        by_alias=True,
        ref_template=REF,
    )
    paths: dict[str, Any] = {
        "/api/handoffs": {
            "post": {
                "operationId": "createHandoff",
                "summary": "Hand an investigation to another agent",
                "parameters": [_IDEMPOTENCY_KEY],
                "requestBody": {
                    "required": True,
                    "content": {"application/json": {"schema": _ref(HandoffRequest)}},
                },
                "responses": {
                    "202": _json(HandoffView, "Accepted and queued for delivery"),
                    "200": _json(HandoffView, "Replay of an earlier request with the same Idempotency-Key"),
                    "400": _problem("Not JSON"),
                    "403": _problem("Caller may not act as the source agent"),
                    "409": _problem(
                        "Idempotency-Key reused with a different body, or a safe-chain limit reached "
                        "(chain deeper than HANDOFF_MAX_CHAIN_DEPTH, or the same ordered agent pair more "
                        "than HANDOFF_MAX_PAIR_REPEATS times in the chain; the detail names the chain)"
                    ),
                    "413": _problem(_TOO_LARGE),
                    "422": _problem(_BREAKS),
                    "503": _problem("Storage unavailable; retry with the same Idempotency-Key"),
                },
            }
        },
        "/api/handoffs/{id}": {
            "get": {
                "operationId": "getHandoff",
                "summary": "The handoff, with its depth and place in its chain (parent and children)",
                "parameters": [_ID],
                "responses": {"200": _json(HandoffView, "The handoff"), **_COMMON_ERRORS},
            }
        },
        "/api/handoffs/{id}/audit": {
            "get": {
                "operationId": "getHandoffAudit",
                "summary": "One page of the append-only, hash-chained audit events, oldest first",
                "parameters": [
                    _ID,
                    {
                        "name": "top",
                        "in": "query",
                        "required": False,
                        "schema": {"type": "integer", "minimum": 1, "maximum": AUDIT_PAGE},
                        "description": f"Events per page (default and most: {AUDIT_PAGE})",
                    },
                    {
                        "name": "continuationToken",
                        "in": "query",
                        "required": False,
                        "schema": {"type": "string", "pattern": "^[0-9]{1,10}$"},
                        "description": "The continuationToken of the previous page",
                    },
                ],
                "responses": {
                    "200": _json(AuditLog, "Audit events in order"),
                    "400": _problem("Bad top or continuationToken"),
                    **_COMMON_ERRORS,
                },
            }
        },
        "/api/handoffs/{id}/audit/verify": {
            "get": {
                "operationId": "verifyHandoffAudit",
                "summary": "Recompute the audit's hash chain and name the first event where it breaks",
                "parameters": [_ID],
                "responses": {
                    "200": _json(AuditVerification, "Whether the chain holds; firstBadSeq when it does not"),
                    **_COMMON_ERRORS,
                },
            }
        },
        "/api/handoffs/{id}/handback": {
            "post": {
                "operationId": "handBack",
                "parameters": [
                    _ID,
                    _IDEMPOTENCY_KEY,
                ],
                "requestBody": {
                    "required": True,
                    "content": {"application/json": {"schema": _ref(HandbackRequest)}},
                },
                "responses": {
                    "202": _json(HandoffView, "Hand-back stored and queued for the source thread"),
                    "200": _json(HandoffView, "Replay of an earlier hand-back with the same Idempotency-Key"),
                    "400": _problem("Not JSON, or a bad Idempotency-Key"),
                    "403": _problem("Not the handoff's target agent"),
                    "409": _problem("Not delivered yet, or Idempotency-Key reused with a different body"),
                    "413": _problem(_TOO_LARGE),
                    "422": _problem(_BREAKS),
                    **_COMMON_ERRORS,
                },
            }
        },
        "/api/threads/{agent}/{threadId}/links": {
            "get": {
                "operationId": "getThreadLinks",
                "parameters": [
                    {"name": "agent", "in": "path", "required": True, "schema": {"type": "string"}},
                    {"name": "threadId", "in": "path", "required": True, "schema": _THREAD_ID},
                ],
                "responses": {
                    "200": _json(ThreadLinks, "Linked threads"),
                    "404": _problem("Unknown agent"),
                    "422": _BAD_THREAD_ID,
                },
            }
        },
        "/api/links": {
            "get": {
                "operationId": "getLinks",
                "parameters": [
                    {"name": "agent", "in": "query", "required": True, "schema": {"type": "string"}},
                    {"name": "threadId", "in": "query", "required": True, "schema": _THREAD_ID},
                ],
                "responses": {
                    "200": _json(ThreadLinks, "Linked threads"),
                    "400": _problem("Missing parameter"),
                    "422": _BAD_THREAD_ID,
                    "404": _problem("Unknown agent"),
                },
            }
        },
        "/api/mcp": {
            "post": {
                "operationId": "mcp",
                "summary": "MCP server (Streamable HTTP, stateless, JSON responses) with the handoff tools",
                "description": "One JSON-RPC message per POST (initialize, ping, tools/list, tools/call); "
                "tools handoff_create, handoff_get, handoff_hand_back, handoff_links, handoff_list_agents "
                "take the same schemas as the REST bodies. Always needs a function key in Azure. "
                "See docs/mcp.md.",
                "requestBody": {
                    "required": True,
                    "content": {"application/json": {"schema": {"type": "object"}}},
                },
                "responses": {
                    "200": {
                        "description": "JSON-RPC answer; a refused tool call is a result with isError "
                        "and the problem's title, detail and field errors",
                        "content": {"application/json": {"schema": {"type": "object"}}},
                    },
                    "202": {"description": "A JSON-RPC notification or response: taken, nothing to answer"},
                    "400": {
                        "description": "Not JSON, not a JSON-RPC message, or an unsupported "
                        "MCP-Protocol-Version (a JSON-RPC error)",
                        "content": {"application/json": {"schema": {"type": "object"}}},
                    },
                    "403": {"description": "Origin header not allowed"},
                    "405": {"description": "GET and DELETE: no sessions or server streams (stateless)"},
                    "406": {"description": "Accept does not include application/json"},
                    "413": _problem(f"Body larger than {MAX_RPC_BODY_BYTES:,} bytes"),
                    "415": {"description": "Content-Type is not application/json"},
                    "421": {"description": "Host header not allowed (DNS-rebinding protection)"},
                    "422": _problem(_TOO_DEEP),
                },
            }
        },
        "/api/a2a": {
            "post": {
                "operationId": "a2aJsonRpc",
                "summary": "A2A v1.0 JSON-RPC: SendMessage (a HandoffRequest as the data part), GetTask",
                "description": "Send the A2A-Version: 1.0 header. SendMessage answers at once with a task "
                "whose id is the handoff id (the message id is the idempotency key); GetTask reports the "
                "handoff: SUBMITTED, WORKING, COMPLETED (the hand-back as an artifact), FAILED, REJECTED, "
                "CANCELED or INPUT_REQUIRED. Errors are JSON-RPC errors whose data carries the problem "
                "details with field pointers. See docs/a2a.md.",
                "requestBody": {
                    "required": True,
                    "content": {
                        "application/json": {"schema": {"type": "object", "required": ["jsonrpc", "method"]}}
                    },
                },
                "responses": {
                    "200": {
                        "description": "JSON-RPC response (result or error)",
                        "content": {"application/json": {"schema": {"type": "object"}}},
                    },
                    "401": _problem(
                        "No Entra principal (anonymous functions behind App Service Authentication)"
                    ),
                    "413": _problem(f"Body larger than {MAX_RPC_BODY_BYTES:,} bytes"),
                    "422": _problem(_TOO_DEEP),
                },
            }
        },
        "/api/a2a/.well-known/agent-card.json": {
            "get": {
                "operationId": "a2aAgentCard",
                "security": [],
                "summary": "The broker's A2A agent card; its interface URL is /api/a2a",
                "responses": {
                    "200": {
                        "description": "Agent card (A2A v1.0)",
                        "content": {"application/json": {"schema": {"type": "object"}}},
                    }
                },
            }
        },
        "/api/alerts": _alerts_operation(),
        "/api/openapi.json": {
            "get": {
                "operationId": "getOpenApiDocument",
                "security": [],
                "summary": "This document",
                "responses": {
                    "200": {
                        "description": "OpenAPI 3.1",
                        "content": {"application/json": {"schema": {"type": "object"}}},
                    }
                },
            }
        },
        "/api/health": {
            "get": {
                "operationId": "health",
                "security": [],
                "responses": {
                    "200": _json(Health, "Storage reachable"),
                    "503": _json(Health, "Storage unreachable"),
                },
            }
        },
    }
    paths.update(_history_and_shared_memory_paths(HistoryPage))
    paths["/api/webhooks/{backendName}"] = _webhook_operation()
    _add_caller_errors(paths)
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "Handoff Broker",
            "version": "0.1.0",
            "description": "Hands an investigation from one Azure SRE Agent to another and brings the "
            "result back.",
        },
        "servers": [{"url": "/"}],
        "security": [{"functionKey": []}],
        "paths": paths,
        "components": {
            "schemas": schema.get("$defs", {}),
            "securitySchemes": {
                "functionKey": {"type": "apiKey", "in": "header", "name": "x-functions-key"},
                "secureWebhook": {
                    "type": "http",
                    "scheme": "bearer",
                    "bearerFormat": "JWT",
                    "description": "Microsoft Entra token of Azure Monitor Action Groups (secure webhook): "
                    "audience HANDOFF_ALERTS_AUDIENCE, tenant HANDOFF_ALERTS_TENANT_ID, app role "
                    "ActionGroupsSecureWebhook, calling app 461e8683-5575-4561-ac7f-899cc907d62a.",
                },
            },
        },
    }


# Answers about the caller, possible on every operation that has one (docs/security.md).
_CALLER_ERRORS = {
    "401": _problem("An X-Handoff-Agent-Key this broker does not know, or no Entra token behind App Service "
                    "Authentication"),
    "403": _problem("The caller may not do this (it is not that agent, or not an operator)"),
    "429": _problem("Too many requests from this caller; see Retry-After"),
}  # fmt: skip
# Answered without a caller: these never see the caller errors (webhooks are authenticated by signature).
_PUBLIC = {"health", "getOpenApiDocument", "a2aAgentCard", "receiveWebhook"}


def _add_caller_errors(paths: dict[str, Any]) -> None:
    for operations in paths.values():
        for operation in operations.values():
            if operation["operationId"] in _PUBLIC:
                continue
            for status, response in _CALLER_ERRORS.items():
                if status == "429" and operation["operationId"] == "receiveAlert":
                    continue  # alerts are folded into storms, not rate limited
                operation["responses"].setdefault(status, response)


def _alerts_operation() -> dict[str, Any]:
    """``POST /api/alerts``, with the security this deployment actually applies (read from settings)."""
    from handoff.settings import get_settings

    settings = get_settings()
    requirement: dict[str, list[str]] = {}
    if settings.http_auth_level == "function":
        requirement["functionKey"] = []  # the key may also be sent as ?code=<key>, as Action Groups do
    if settings.secure_webhook:
        requirement["secureWebhook"] = []
    return {
        "post": {
            "operationId": "receiveAlert",
            "summary": "Azure Monitor alert (common alert schema) from an Action Group webhook",
            "description": "Routes the alert by the registry's alertRoutes to a handoff; one handoff per "
            "alertId (repeats and Resolved update it). Requires every scheme listed under security: a "
            "function key unless the app runs anonymous functions behind App Service Authentication, and "
            "a secure-webhook token when HANDOFF_ALERTS_AUDIENCE and HANDOFF_ALERTS_TENANT_ID are set.",
            "security": [requirement] if requirement else [],
            "requestBody": {
                "required": True,
                "content": {
                    "application/json": {"schema": {"type": "object", "required": ["schemaId", "data"]}}
                },
            },
            "responses": {
                "202": _json(AlertReceipt, "Handoffs created or updated"),
                "200": _json(AlertReceipt, "No route matched, or Resolved for an alert never seen: recorded"),
                "400": _problem("Not the common alert schema: enable it on the action group"),
                "401": _problem("Secure-webhook token missing or invalid"),
                "413": _problem("Body larger than 1 MiB"),
                "503": _problem("Storage (or the tenant's signing keys) unavailable; Azure Monitor retries"),
            },
        }
    }


def _webhook_operation() -> dict[str, Any]:
    """``POST /api/webhooks/{backendName}``: signed vendor webhooks (humans in the loop)."""
    from handoff.domain.shared_memory.config import BACKEND_NAME_PATTERN

    answer = {
        "type": "object",
        "required": ["status"],
        "properties": {
            "status": {"type": "string", "enum": ["queued", "duplicate", "ignored"]},
            "reason": {"type": "string"},
            "investigations": {"type": "integer", "minimum": 0},
            "override": {"type": "boolean"},
        },
    }
    return {
        "post": {
            "operationId": "receiveWebhook",
            "summary": "A vendor's signed webhook: a person's comment or note on a broker's record",
            "description": "Runs at anonymous auth level: vendors cannot send function keys, so a delivery "
            "is authenticated by its signature alone, keyed with the backend's webhookSecretSetting. GitHub: "
            "X-Hub-Signature-256 (sha256=<hex HMAC-SHA256 of the raw body>), X-GitHub-Event issue_comment "
            "(and ping), X-GitHub-Delivery. PagerDuty v3: X-PagerDuty-Signature (v1=<hex>, any of a "
            "comma-separated list), event incident.annotated. Each entry is taken once (a replayed or "
            "redelivered one answers 200 duplicate).",
            "security": [],
            "parameters": [
                {
                    "name": "backendName",
                    "in": "path",
                    "required": True,
                    "schema": {"type": "string", "pattern": BACKEND_NAME_PATTERN},
                }
            ],
            "requestBody": {
                "required": True,
                "content": {"application/json": {"schema": {"type": "object"}}},
            },
            "responses": {
                "202": {
                    "description": "Queued for the agents of the investigations on the record",
                    "content": {"application/json": {"schema": answer}},
                },
                "200": {
                    "description": "Taken, nothing to post: a duplicate, the broker's own entry, no active "
                    "investigation on the record, or an event that is not read (ping)",
                    "content": {"application/json": {"schema": answer}},
                },
                "400": _problem("Signed, but not JSON"),
                "401": _problem("Signature missing or invalid (logged in the security log)"),
                "404": _problem("No backend of that name takes webhooks"),
                "413": _problem("Body larger than 1 MiB"),
                "422": _problem("Signed JSON that is not the vendor's documented event shape"),
                "503": _problem("Storage unavailable; the vendor retries"),
            },
        }
    }


def _history_and_shared_memory_paths(history_page: type[BaseModel]) -> dict[str, Any]:
    """``GET /api/history`` and the shared-memory routes of a handoff."""

    def query(name: str, schema: dict[str, Any], description: str) -> dict[str, Any]:
        return {"name": name, "in": "query", "required": False, "schema": schema, "description": description}

    return {
        "/api/history": {
            "get": {
                "operationId": "searchHistory",
                "summary": "Earlier investigations, newest first",
                "parameters": [
                    query(
                        "resource",
                        {"type": "string"},
                        "A resource ID in the handoff, or a resource-group or "
                        "subscription prefix (case-insensitive)",
                    ),
                    query("alertRule", {"type": "string"}, "The alert rule that opened the handoff"),
                    query("agent", {"type": "string"}, "Source or target agent (name or resource ID)"),
                    query("outcome", {"type": "string", "enum": list(OUTCOME_LABELS)}, "Hand-back outcome"),
                    query("since", {"type": "string", "format": "date-time"}, "Handed back at or after"),
                    query("until", {"type": "string", "format": "date-time"}, "Handed back at or before"),
                    query(
                        "q", {"type": "string"}, "Words that must all appear in title, summary or root cause"
                    ),
                    query(
                        "top", {"type": "integer", "minimum": 1, "maximum": 100, "default": 20}, "Page size"
                    ),
                    query("continuationToken", {"type": "string"}, "From the previous page"),
                ],
                "responses": {
                    "200": _json(history_page, "One page of investigations"),
                    "400": _problem("Unknown parameter or bad continuation token"),
                    "422": _problem("A parameter breaks its schema; errors name it"),
                    "503": _problem("Storage unavailable"),
                },
            }
        },
        "/api/handoffs/{id}/retry": {
            "post": {
                "operationId": "retryHandoff",
                "summary": "Operators: queue the handoff's failed steps again (delivery, cross-link, "
                "hand-backs)",
                "description": "Each failed step is queued with a fresh budget of attempts; a delivery "
                "looks for the thread an earlier attempt may have opened before opening one. A second "
                "call finds nothing failed and queues nothing.",
                "parameters": [_ID],
                "responses": {
                    "202": {
                        "description": "Failed steps queued again (listed in retried)",
                        "content": {"application/json": {"schema": _RETRY_ANSWER}},
                    },
                    "200": {
                        "description": "Nothing had failed: nothing queued",
                        "content": {"application/json": {"schema": _RETRY_ANSWER}},
                    },
                    **_COMMON_ERRORS,
                },
            }
        },
        "/api/handoffs/{id}/shared-memory": {
            "get": {
                "operationId": "getSharedMemoryWrites",
                "summary": "State of the handoff's writes to GitHub, PagerDuty, ServiceNow and Jira",
                "parameters": [_ID],
                "responses": {
                    "200": {"description": "Writes with backend, point, status, destination"},
                    **_COMMON_ERRORS,
                },
            }
        },
        "/api/handoffs/{id}/shared-memory/replay": {
            "post": {
                "operationId": "replaySharedMemory",
                "summary": "Re-queue the handoff's failed shared-memory writes",
                "parameters": [_ID],
                "requestBody": {
                    "required": False,
                    "content": {
                        "application/json": {
                            "schema": {
                                "type": "object",
                                "additionalProperties": False,
                                "properties": {"backend": {"type": "string"}},
                            }
                        }
                    },
                },
                "responses": {
                    "202": {"description": "Failed writes re-queued (listed in replayed)"},
                    "200": {"description": "Nothing to replay"},
                    "400": _problem("Not JSON, or not an object with at most a string backend"),
                    "413": _problem("Body larger than 262,144 bytes"),
                    "422": _problem("Unknown backend"),
                    **_COMMON_ERRORS,
                },
            }
        },
    }
