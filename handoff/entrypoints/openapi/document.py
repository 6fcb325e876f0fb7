"""The builder: the route tables, the schemas of the wire models and the security schemes in one document."""

from __future__ import annotations

from functools import lru_cache
from typing import Any

from pydantic import BaseModel
from pydantic.json_schema import JsonSchemaMode, models_json_schema

from handoff.domain.alerts.receipt import AlertReceipt
from handoff.domain.audit import AuditVerification
from handoff.domain.errors import ProblemDetails
from handoff.domain.history import HistoryPage
from handoff.domain.listing import HandoffList
from handoff.domain.models import AuditLog, HandbackRequest, HandoffRequest, HandoffView, Health, ThreadLinks
from handoff.domain.timeline import TimelineView
from handoff.entrypoints.mcp_tools import AgentList
from handoff.entrypoints.openapi import contract, handoffs, history, webhooks
from handoff.entrypoints.openapi.alerts import alerts_path
from handoff.entrypoints.openapi.parts import REF, problem
from handoff.entrypoints.openapi.protocols import BROKER_PATHS, PROTOCOL_PATHS
from handoff.settings import Settings, get_settings

# The models under components/schemas: request bodies as they are validated, the rest as they are sent.
SCHEMA_MODELS: tuple[tuple[type[BaseModel], JsonSchemaMode], ...] = (
    (HandoffRequest, "validation"),
    (HandbackRequest, "validation"),
    (HandoffView, "serialization"),
    (AuditLog, "serialization"),
    (AuditVerification, "serialization"),
    (ThreadLinks, "serialization"),
    (Health, "serialization"),
    (ProblemDetails, "serialization"),
    (AlertReceipt, "serialization"),
    (HistoryPage, "serialization"),
    (HandoffList, "serialization"),
    (TimelineView, "serialization"),
    (AgentList, "serialization"),
)

INFO = {
    "title": "Handoff Broker",
    "version": "0.1.0",
    "description": "Hands an investigation from one Azure SRE Agent to another and brings the result back.",
}

SECURITY_SCHEMES = {
    "functionKey": {"type": "apiKey", "in": "header", "name": "x-functions-key"},
    "secureWebhook": {
        "type": "http",
        "scheme": "bearer",
        "bearerFormat": "JWT",
        "description": "Microsoft Entra token of Azure Monitor Action Groups (secure webhook): "
        "audience HANDOFF_ALERTS_AUDIENCE, tenant HANDOFF_ALERTS_TENANT_ID, app role "
        "ActionGroupsSecureWebhook, calling app 461e8683-5575-4561-ac7f-899cc907d62a.",
    },
}

# Answers about the caller, possible on every operation that has one (docs/security.md).
CALLER_ERRORS = {
    "401": problem(
        "An X-Handoff-Agent-Key this broker does not know, or no Entra token behind App Service "
        "Authentication"
    ),
    "403": problem("The caller may not do this (it is not that agent, or not an operator)"),
    "429": problem("Too many requests from this caller; see Retry-After"),
}
# Answered without a caller: these never see the caller errors (webhooks are authenticated by signature,
# push notifications by their token).
PUBLIC = frozenset(
    {
        "health",
        "getOpenApiDocument",
        "a2aAgentCard",
        "receiveWebhook",
        "getContractSchema",
        "a2aPushNotification",
    }
)
# Alerts are folded into storms, not rate limited.
NOT_RATE_LIMITED = frozenset({"receiveAlert"})


def paths(settings: Settings) -> dict[str, dict[str, Any]]:
    """Every route, in the order the document lists them, with the caller errors each may answer."""
    tables = [
        handoffs.PATHS,
        PROTOCOL_PATHS,
        {"/api/alerts": alerts_path(settings)},
        BROKER_PATHS,
        contract.PATHS,
        history.PATHS,
        webhooks.PATHS,
    ]
    return {
        path: {method: with_caller_errors(operation) for method, operation in item.items()}
        for table in tables
        for path, item in table.items()
    }


def with_caller_errors(operation: dict[str, Any]) -> dict[str, Any]:
    """``operation`` with the caller errors it does not answer otherwise (a new dict: tables stay as
    they are)."""
    name = operation["operationId"]
    if name in PUBLIC:
        return operation
    added = {
        status: response
        for status, response in CALLER_ERRORS.items()
        if status not in operation["responses"] and not (status == "429" and name in NOT_RATE_LIMITED)
    }
    return {**operation, "responses": {**operation["responses"], **added}}


def schemas() -> dict[str, Any]:
    """The JSON schemas of :data:`SCHEMA_MODELS` and of the models they refer to, by name."""
    _, schema = models_json_schema(SCHEMA_MODELS, by_alias=True, ref_template=REF)
    defs: dict[str, Any] = schema.get("$defs", {})
    return defs


@lru_cache(maxsize=1)
def openapi_document() -> dict[str, Any]:
    """The API description (routes, request and response schemas, problem responses)."""
    return {
        "openapi": "3.1.0",
        "info": INFO,
        "servers": [{"url": "/"}],
        "security": [{"functionKey": []}],
        "paths": paths(get_settings()),
        "components": {"schemas": schemas(), "securitySchemes": SECURITY_SCHEMES},
    }
