"""OpenAPI 3.1 document generated from the wire models, so the document cannot drift from the code."""

from __future__ import annotations

from functools import lru_cache
from typing import Any

from pydantic import BaseModel
from pydantic.json_schema import models_json_schema

from handoff.errors import ProblemDetails
from handoff.messages import OUTCOME_LABELS
from handoff.models import (
    AuditLog,
    HandbackRequest,
    HandoffRequest,
    HandoffView,
    Health,
    ThreadLinks,
)

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
_COMMON_ERRORS = {"404": _problem("No such handoff"), "503": _problem("Storage unavailable")}


@lru_cache(maxsize=1)
def openapi_document() -> dict[str, Any]:
    """The API description (routes, request and response schemas, problem responses)."""
    from handoff.history import HistoryPage

    models = [HandoffRequest, HandbackRequest, HandoffView, AuditLog, ThreadLinks, Health, ProblemDetails]
    models.append(HistoryPage)
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
                "parameters": [
                    {
                        "name": "Idempotency-Key",
                        "in": "header",
                        "required": False,
                        "schema": {"type": "string", "maxLength": 200},
                    }
                ],
                "requestBody": {
                    "required": True,
                    "content": {"application/json": {"schema": _ref(HandoffRequest)}},
                },
                "responses": {
                    "202": _json(HandoffView, "Accepted and queued for delivery"),
                    "200": _json(HandoffView, "Replay of an earlier request with the same Idempotency-Key"),
                    "400": _problem("Not JSON"),
                    "403": _problem("Caller may not act as the source agent"),
                    "409": _problem("Idempotency-Key reused with a different body"),
                    "413": _problem("Body larger than 262,144 bytes"),
                    "422": _problem("Body breaks the schema; errors name the fields"),
                    "503": _problem("Storage unavailable; retry with the same Idempotency-Key"),
                },
            }
        },
        "/api/handoffs/{id}": {
            "get": {
                "operationId": "getHandoff",
                "parameters": [_ID],
                "responses": {"200": _json(HandoffView, "The handoff"), **_COMMON_ERRORS},
            }
        },
        "/api/handoffs/{id}/audit": {
            "get": {
                "operationId": "getHandoffAudit",
                "parameters": [_ID],
                "responses": {"200": _json(AuditLog, "Audit events in order"), **_COMMON_ERRORS},
            }
        },
        "/api/handoffs/{id}/handback": {
            "post": {
                "operationId": "handBack",
                "parameters": [_ID],
                "requestBody": {
                    "required": True,
                    "content": {"application/json": {"schema": _ref(HandbackRequest)}},
                },
                "responses": {
                    "202": _json(HandoffView, "Hand-back stored and queued for the source thread"),
                    "403": _problem("Not the handoff's target agent"),
                    "409": _problem("The handoff is not delivered yet"),
                    "422": _problem("Body breaks the schema"),
                    **_COMMON_ERRORS,
                },
            }
        },
        "/api/threads/{agent}/{threadId}/links": {
            "get": {
                "operationId": "getThreadLinks",
                "parameters": [
                    {"name": "agent", "in": "path", "required": True, "schema": {"type": "string"}},
                    {"name": "threadId", "in": "path", "required": True, "schema": {"type": "string"}},
                ],
                "responses": {"200": _json(ThreadLinks, "Linked threads"), "404": _problem("Unknown agent")},
            }
        },
        "/api/links": {
            "get": {
                "operationId": "getLinks",
                "parameters": [
                    {"name": "agent", "in": "query", "required": True, "schema": {"type": "string"}},
                    {"name": "threadId", "in": "query", "required": True, "schema": {"type": "string"}},
                ],
                "responses": {
                    "200": _json(ThreadLinks, "Linked threads"),
                    "400": _problem("Missing parameter"),
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
            "securitySchemes": {"functionKey": {"type": "apiKey", "in": "header", "name": "x-functions-key"}},
        },
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
                    "422": _problem("Unknown backend"),
                    **_COMMON_ERRORS,
                },
            }
        },
    }
