"""``POST /api/alerts``: Azure Monitor alerts, with the security this deployment applies."""

from __future__ import annotations

from typing import Any

from handoff.domain.alerts.receipt import AlertReceipt
from handoff.entrypoints.openapi.parts import NOT_JSON, json_response, problem
from handoff.settings import Settings

# Its security depends on the settings: alerts_path fills it in.
RECEIVE_ALERT = {
    "operationId": "receiveAlert",
    "summary": "Azure Monitor alert (common alert schema) from an Action Group webhook",
    "description": "Routes the alert by the registry's alertRoutes to a handoff; one handoff per "
    "alertId (repeats and Resolved update it). Requires every scheme listed under security: a "
    "function key unless the app runs anonymous functions behind App Service Authentication, and "
    "a secure-webhook token when HANDOFF_ALERTS_AUDIENCE and HANDOFF_ALERTS_TENANT_ID are set.",
    "security": [],
    "requestBody": {
        "required": True,
        "content": {"application/json": {"schema": {"type": "object", "required": ["schemaId", "data"]}}},
    },
    "responses": {
        "202": json_response(AlertReceipt, "Handoffs created or updated"),
        "200": json_response(AlertReceipt, "No route matched, or Resolved for an alert never seen: recorded"),
        "400": problem("Not the common alert schema: enable it on the action group"),
        "401": problem("Secure-webhook token missing or invalid"),
        "413": problem("Body larger than 1 MiB"),
        "415": NOT_JSON,
        "503": problem("Storage (or the tenant's signing keys) unavailable; Azure Monitor retries"),
    },
}


def alerts_path(settings: Settings) -> dict[str, Any]:
    """The ``/api/alerts`` path item, requiring the schemes ``settings`` turn on."""
    requirement: dict[str, list[str]] = {}
    if settings.http_auth_level == "function":
        requirement["functionKey"] = []  # the key may also be sent as ?code=<key>, as Action Groups do
    if settings.secure_webhook:
        requirement["secureWebhook"] = []
    return {"post": {**RECEIVE_ALERT, "security": [requirement] if requirement else []}}
