"""Routes of handoffs: create, read, audit, timeline, hand back, the links between agents' threads, and the
registered agents."""

from __future__ import annotations

from typing import Any

from handoff.domain.audit import AuditVerification
from handoff.domain.listing import DEFAULT_LOOKBACK_DAYS, DEFAULT_TOP, MAX_TOP, STATUSES, HandoffList
from handoff.domain.models import AuditLog, HandbackRequest, HandoffRequest, HandoffView, ThreadLinks
from handoff.domain.registry import AGENT_NAME_PATTERN
from handoff.domain.timeline import MERMAID_CONTENT_TYPE, TimelineView
from handoff.entrypoints.mcp_tools import AgentList
from handoff.entrypoints.openapi.parts import (
    BAD_THREAD_ID,
    BREAKS,
    COMMON_ERRORS,
    ID,
    IDEMPOTENCY_KEY,
    NOT_JSON,
    THREAD_ID,
    TOO_LARGE,
    json_body,
    json_response,
    problem,
    query,
    ref,
)
from handoff.services.queries import AUDIT_PAGE

CREATE = {
    "operationId": "createHandoff",
    "summary": "Hand an investigation to another agent",
    "parameters": [IDEMPOTENCY_KEY],
    "requestBody": json_body(HandoffRequest),
    "responses": {
        "202": json_response(HandoffView, "Accepted and queued for delivery"),
        "200": json_response(HandoffView, "Replay of an earlier request with the same Idempotency-Key"),
        "400": problem("Not JSON"),
        "403": problem("Caller may not act as the source agent"),
        "409": problem(
            "Idempotency-Key reused with a different body, or a safe-chain limit reached "
            "(chain deeper than HANDOFF_MAX_CHAIN_DEPTH, or the same ordered agent pair more "
            "than HANDOFF_MAX_PAIR_REPEATS times in the chain; the detail names the chain)"
        ),
        "413": problem(TOO_LARGE),
        "415": NOT_JSON,
        "422": problem(BREAKS),
        "503": problem("Storage unavailable; retry with the same Idempotency-Key"),
    },
}

LIST = {
    "operationId": "listHandoffs",
    "summary": "The handoffs the caller may see, newest first, a page at a time",
    "description": "Read from the handoff index (one entry per handoff, written at each status change), "
    "one query per UTC day of creation, never a scan. An agent lists the handoffs it handed off or "
    f"received; an operator lists all. Without since, the last {DEFAULT_LOOKBACK_DAYS} days (UTC) "
    "are listed. A page may hold fewer than top items and still carry a continuationToken (the walk "
    "stops after a number of days per request); it is null after the last page. Every bad parameter "
    "is a 400 naming it.",
    "parameters": [
        query("status", {"type": "string", "enum": list(STATUSES)}, "Only handoffs with this status"),
        query(
            "source",
            {"type": "string", "pattern": AGENT_NAME_PATTERN},
            "Source agent (registered name, or a system source such as azure-monitor)",
        ),
        query("target", {"type": "string", "pattern": AGENT_NAME_PATTERN}, "Target agent"),
        query(
            "since",
            {"type": "string", "format": "date-time"},
            "Created at or after (ISO 8601; UTC when it has no offset)",
        ),
        query("alertRule", {"type": "string", "maxLength": 260}, "The alert rule that opened it"),
        query(
            "top",
            {"type": "integer", "minimum": 1, "maximum": MAX_TOP, "default": DEFAULT_TOP},
            "Page size",
        ),
        query(
            "continuationToken",
            {"type": "string", "maxLength": 512},
            "The continuationToken of the previous page (signed by the broker: any other is a 400)",
        ),
    ],
    "responses": {
        "200": json_response(HandoffList, "One page of handoffs, newest first"),
        "400": problem(
            "An unknown or bad parameter (errors name it), or a continuation token the broker did not issue"
        ),
        "503": problem("Storage unavailable"),
    },
}

READ = {
    "operationId": "getHandoff",
    "summary": "The handoff, with its depth and place in its chain (parent and children)",
    "parameters": [ID],
    "responses": {"200": json_response(HandoffView, "The handoff"), **COMMON_ERRORS},
}

AUDIT = {
    "operationId": "getHandoffAudit",
    "summary": "One page of the append-only, hash-chained audit events, oldest first",
    "parameters": [
        ID,
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
        "200": json_response(AuditLog, "Audit events in order"),
        "400": problem("Bad top or continuationToken"),
        **COMMON_ERRORS,
    },
}

VERIFY_AUDIT = {
    "operationId": "verifyHandoffAudit",
    "summary": "Recompute the audit's hash chain and name the first event where it breaks",
    "parameters": [ID],
    "responses": {
        "200": json_response(AuditVerification, "Whether the chain holds; firstBadSeq when it does not"),
        **COMMON_ERRORS,
    },
}

TIMELINE = {
    "operationId": "getHandoffTimeline",
    "summary": "The handoff's chain (root and every child) as a sequence diagram of their audit events",
    "description": "Agents, the broker and Azure Monitor (alert-started chains) as participants; one "
    "message or note per audit event (alerts, handoffs, deliveries, retries, hand-backs, failures, "
    "human notes), each starting with its time (UTC, HH:MM:SS). The format parameter alone picks the "
    "representation; the Accept header is not consulted. Caller text in labels is cut to one short "
    "line of letters, digits and a little punctuation, so it cannot add Mermaid statements.",
    "parameters": [
        ID,
        query(
            "format",
            {"type": "string", "enum": ["mermaid", "svg", "json"], "default": "mermaid"},
            "mermaid: Mermaid sequenceDiagram source; svg: the diagram drawn by the broker; "
            "json: the chain's handoffs and the Mermaid source",
        ),
    ],
    "responses": {
        "200": {
            "description": "The timeline, in the representation format names",
            "content": {
                MERMAID_CONTENT_TYPE: {"schema": {"type": "string"}},
                "image/svg+xml": {"schema": {"type": "string"}},
                "application/json": {"schema": ref(TimelineView)},
            },
        },
        "400": problem("Unknown format"),
        **COMMON_ERRORS,
    },
}

HAND_BACK = {
    "operationId": "handBack",
    "parameters": [ID, IDEMPOTENCY_KEY],
    "requestBody": json_body(HandbackRequest),
    "responses": {
        "202": json_response(HandoffView, "Hand-back stored and queued for the source thread"),
        "200": json_response(HandoffView, "Replay of an earlier hand-back with the same Idempotency-Key"),
        "400": problem("Not JSON, or a bad Idempotency-Key"),
        "403": problem("Not the handoff's target agent"),
        "409": problem("Not delivered yet, or Idempotency-Key reused with a different body"),
        "413": problem(TOO_LARGE),
        "415": NOT_JSON,
        "422": problem(BREAKS),
        **COMMON_ERRORS,
    },
}

THREAD_LINKS = {
    "operationId": "getThreadLinks",
    "parameters": [
        {"name": "agent", "in": "path", "required": True, "schema": {"type": "string"}},
        {"name": "threadId", "in": "path", "required": True, "schema": THREAD_ID},
    ],
    "responses": {
        "200": json_response(ThreadLinks, "Linked threads"),
        "404": problem("Unknown agent"),
        "422": BAD_THREAD_ID,
    },
}

LINKS = {
    "operationId": "getLinks",
    "parameters": [
        {"name": "agent", "in": "query", "required": True, "schema": {"type": "string"}},
        {"name": "threadId", "in": "query", "required": True, "schema": THREAD_ID},
    ],
    "responses": {
        "200": json_response(ThreadLinks, "Linked threads"),
        "400": problem("Missing parameter"),
        "422": BAD_THREAD_ID,
        "404": problem("Unknown agent"),
    },
}

AGENTS = {
    "operationId": "listAgents",
    "summary": "The registered agents, as the MCP tool handoff_list_agents lists them",
    "responses": {
        "200": json_response(AgentList, "Every registered agent"),
        "503": problem("Storage unavailable"),
    },
}

PATHS: dict[str, dict[str, Any]] = {
    "/api/handoffs": {"post": CREATE, "get": LIST},
    "/api/handoffs/{id}": {"get": READ},
    "/api/handoffs/{id}/audit": {"get": AUDIT},
    "/api/handoffs/{id}/audit/verify": {"get": VERIFY_AUDIT},
    "/api/handoffs/{id}/timeline": {"get": TIMELINE},
    "/api/handoffs/{id}/handback": {"post": HAND_BACK},
    "/api/threads/{agent}/{threadId}/links": {"get": THREAD_LINKS},
    "/api/links": {"get": LINKS},
    "/api/agents": {"get": AGENTS},
}
