"""``GET /api/schemas/handoff-context/v1/{name}.json``: the handoff contract's JSON Schemas."""

from __future__ import annotations

from typing import Any

from handoff.domain.contract import MEDIA_TYPE, SCHEMA_NAMES
from handoff.entrypoints.openapi.parts import problem

GET_CONTRACT_SCHEMA = {
    "operationId": "getContractSchema",
    "security": [],
    "summary": "A JSON Schema (2020-12) of the handoff contract, handoffContext v1",
    "description": "The schemas of the handoff request, its context, each evidence kind, the hand-back, "
    "the handoff status (GET /api/handoffs/{id}) and the audit event, as checked in under "
    "spec/handoff-context/v1/. Each has a stable $id under "
    "https://schemas.handoff-broker.dev/handoff-context/v1/ and refers to the others by it. "
    "Anonymous: the contract is public.",
    "parameters": [
        {
            "name": "name",
            "in": "path",
            "required": True,
            "schema": {"type": "string", "enum": sorted(SCHEMA_NAMES)},
            "description": "The schema's file name without .json",
        }
    ],
    "responses": {
        "200": {
            "description": "The schema",
            "content": {MEDIA_TYPE: {"schema": {"type": "object", "required": ["$schema", "$id"]}}},
        },
        "404": problem("No schema of that name in the contract"),
    },
}

PATHS: dict[str, dict[str, Any]] = {
    "/api/schemas/handoff-context/v1/{name}.json": {"get": GET_CONTRACT_SCHEMA}
}
