"""``POST /api/webhooks/{backendName}``: signed vendor webhooks (humans in the loop)."""

from __future__ import annotations

from typing import Any

from handoff.domain.shared_memory.config import BACKEND_NAME_PATTERN
from handoff.entrypoints.openapi.parts import NOT_JSON, problem

ANSWER = {
    "type": "object",
    "required": ["status"],
    "properties": {
        "status": {"type": "string", "enum": ["queued", "duplicate", "ignored"]},
        "reason": {"type": "string"},
        "investigations": {"type": "integer", "minimum": 0},
        "override": {"type": "boolean"},
    },
}

RECEIVE_WEBHOOK = {
    "operationId": "receiveWebhook",
    "summary": "A vendor's signed webhook: a person's comment or note on a broker's record",
    "description": "Runs at anonymous auth level: vendors cannot send function keys, so a delivery "
    "is authenticated by its signature alone, keyed with the backend's webhookSecretSetting. GitHub: "
    "X-Hub-Signature-256 (sha256=<hex HMAC-SHA256 of the raw body>), X-GitHub-Event issue_comment "
    "(and ping), X-GitHub-Delivery. PagerDuty v3: X-PagerDuty-Signature (v1=<hex>, any of a "
    "comma-separated list), event incident.annotated. Jira: an admin webhook's X-Hub-Signature "
    "(sha256=<hex>) or an Automation rule's X-Handoff-Webhook-Token (the secret itself), event "
    "comment_created. ServiceNow: the business rule's X-Handoff-Webhook-Token, a sys_journal_field "
    "entry. Each entry is taken once (a replayed or redelivered one, or one a poll took first, answers "
    "200 duplicate).",
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
            "content": {"application/json": {"schema": ANSWER}},
        },
        "200": {
            "description": "Taken, nothing to post: a duplicate, the broker's own entry, no active "
            "investigation on the record, or an event that is not read (ping)",
            "content": {"application/json": {"schema": ANSWER}},
        },
        "400": problem("Signed, but not JSON"),
        "401": problem("Signature missing or invalid (logged in the security log)"),
        "404": problem("No backend of that name takes webhooks"),
        "413": problem("Body larger than 1 MiB"),
        "415": NOT_JSON,
        "422": problem("Signed JSON that is not the vendor's documented event shape"),
        "503": problem("Storage unavailable; the vendor retries"),
    },
}

PATHS: dict[str, dict[str, Any]] = {"/api/webhooks/{backendName}": {"post": RECEIVE_WEBHOOK}}
