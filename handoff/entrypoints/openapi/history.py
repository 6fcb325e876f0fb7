"""``GET /api/history`` and the operators' routes of a handoff: retry, shared-memory writes, replay."""

from __future__ import annotations

from typing import Any

from handoff.domain.history import HistoryPage
from handoff.domain.messages import OUTCOME_LABELS
from handoff.entrypoints.openapi.parts import COMMON_ERRORS, ID, NOT_JSON, json_response, problem, query

SEARCH = {
    "operationId": "searchHistory",
    "summary": "Earlier investigations, newest first",
    "parameters": [
        query(
            "resource",
            {"type": "string"},
            "A resource ID in the handoff, or a resource-group or subscription prefix (case-insensitive)",
        ),
        query("alertRule", {"type": "string"}, "The alert rule that opened the handoff"),
        query("agent", {"type": "string"}, "Source or target agent (name or resource ID)"),
        query("outcome", {"type": "string", "enum": list(OUTCOME_LABELS)}, "Hand-back outcome"),
        query("since", {"type": "string", "format": "date-time"}, "Handed back at or after"),
        query("until", {"type": "string", "format": "date-time"}, "Handed back at or before"),
        query("q", {"type": "string"}, "Words that must all appear in title, summary or root cause"),
        query("top", {"type": "integer", "minimum": 1, "maximum": 100, "default": 20}, "Page size"),
        query("continuationToken", {"type": "string"}, "From the previous page"),
    ],
    "responses": {
        "200": json_response(HistoryPage, "One page of investigations"),
        "400": problem("Unknown parameter or bad continuation token"),
        "422": problem("A parameter breaks its schema; errors name it"),
        "503": problem("Storage unavailable"),
    },
}

RETRY_ANSWER = {
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

RETRY = {
    "operationId": "retryHandoff",
    "summary": "Operators: queue the handoff's failed steps again (delivery, cross-link, hand-backs)",
    "description": "Each failed step is queued with a fresh budget of attempts; a delivery "
    "looks for the thread an earlier attempt may have opened before opening one. A second "
    "call finds nothing failed and queues nothing.",
    "parameters": [ID],
    "responses": {
        "202": {
            "description": "Failed steps queued again (listed in retried)",
            "content": {"application/json": {"schema": RETRY_ANSWER}},
        },
        "200": {
            "description": "Nothing had failed: nothing queued",
            "content": {"application/json": {"schema": RETRY_ANSWER}},
        },
        "415": NOT_JSON,
        **COMMON_ERRORS,
    },
}

SHARED_MEMORY_WRITES = {
    "operationId": "getSharedMemoryWrites",
    "summary": "State of the handoff's writes to GitHub, PagerDuty, ServiceNow and Jira",
    "parameters": [ID],
    "responses": {
        "200": {"description": "Writes with backend, point, status, destination"},
        **COMMON_ERRORS,
    },
}

REPLAY_SHARED_MEMORY = {
    "operationId": "replaySharedMemory",
    "summary": "Re-queue the handoff's failed shared-memory writes",
    "parameters": [ID],
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
        "400": problem("Not JSON, or not an object with at most a string backend"),
        "413": problem("Body larger than 262,144 bytes"),
        "415": NOT_JSON,
        "422": problem("Unknown backend"),
        **COMMON_ERRORS,
    },
}

PATHS: dict[str, dict[str, Any]] = {
    "/api/history": {"get": SEARCH},
    "/api/handoffs/{id}/retry": {"post": RETRY},
    "/api/handoffs/{id}/shared-memory": {"get": SHARED_MEMORY_WRITES},
    "/api/handoffs/{id}/shared-memory/replay": {"post": REPLAY_SHARED_MEMORY},
}
