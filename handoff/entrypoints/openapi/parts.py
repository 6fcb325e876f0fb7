"""The pieces the route tables share: schema references, responses, parameters and descriptions."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel

from handoff.domain.errors import ProblemDetails
from handoff.domain.intake import ENVELOPE_DEPTH, MAX_DEPTH, MAX_RPC_BODY_BYTES
from handoff.domain.models import PATH_SEGMENT_MAX, PATH_SEGMENT_PATTERN

REF = "#/components/schemas/{model}"


def ref(model: type[BaseModel]) -> dict[str, str]:
    """A reference to ``model``'s schema under ``components``."""
    return {"$ref": REF.format(model=model.__name__)}


def json_response(model: type[BaseModel], description: str) -> dict[str, Any]:
    """A JSON response whose body is ``model``."""
    return {"description": description, "content": {"application/json": {"schema": ref(model)}}}


def json_body(model: type[BaseModel]) -> dict[str, Any]:
    """A required JSON request body that is ``model``."""
    return {"required": True, "content": {"application/json": {"schema": ref(model)}}}


def object_response(description: str) -> dict[str, Any]:
    """A response whose body is some JSON object (one not described by a model)."""
    return {"description": description, "content": {"application/json": {"schema": {"type": "object"}}}}


def problem(description: str) -> dict[str, Any]:
    """An ``application/problem+json`` response."""
    return {
        "description": description,
        "content": {"application/problem+json": {"schema": ref(ProblemDetails)}},
    }


def query(name: str, schema: dict[str, Any], description: str) -> dict[str, Any]:
    """An optional query parameter."""
    return {"name": name, "in": "query", "required": False, "schema": schema, "description": description}


ID = {"name": "id", "in": "path", "required": True, "schema": {"type": "string", "format": "uuid"}}
IDEMPOTENCY_KEY = {
    "name": "Idempotency-Key",
    "in": "header",
    "required": False,
    "schema": {"type": "string", "maxLength": 200},
}
COMMON_ERRORS = {"404": problem("No such handoff"), "503": problem("Storage unavailable")}
# A thread id is one URL path segment (handoff.domain.models.PathSegmentId).
THREAD_ID = {
    "type": "string",
    "minLength": 1,
    "maxLength": PATH_SEGMENT_MAX,
    "pattern": PATH_SEGMENT_PATTERN,
}
BAD_THREAD_ID = problem("threadId is not one URL path segment")
# Every POST route (handoff.domain.intake.check_json_content_type).
NOT_JSON = problem(
    "A body whose Content-Type is not application/json (charset utf-8 or none) or application/*+json; "
    "errors name the Content-Type header"
)
TOO_LARGE = "Body larger than 262,144 bytes, or than a storage entity holds once stored"
RPC_TOO_LARGE = f"Body larger than {MAX_RPC_BODY_BYTES:,} bytes"
BREAKS = (
    f"Body breaks the schema or the intake limits (nested deeper than {MAX_DEPTH} levels, a lone "
    "UTF-16 surrogate, NaN or a number too large); errors name the fields"
)
TOO_DEEP = (
    f"Nested deeper than {MAX_DEPTH} levels of arrays and objects (plus the JSON-RPC envelope's "
    f"{ENVELOPE_DEPTH}); checked before the body is parsed"
)
