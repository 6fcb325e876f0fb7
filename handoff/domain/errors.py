"""Problems: the one error type of the service layer, rendered as RFC 9457 problem details.

A problem never echoes a secret: its detail, its field errors and its instance are redacted when they
are made (see :mod:`handoff.domain.redaction`), so REST, MCP and A2A errors are all covered.
"""

from __future__ import annotations

from collections.abc import Container, Iterable
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

from handoff.domain.redaction import redact

PROBLEM_CONTENT_TYPE = "application/problem+json"
PROBLEM_TYPE_BASE = "https://handoff-broker.dev/problems/"


class FieldError(BaseModel):
    """One wrong field: a JSON Pointer into the request body and what is wrong with it."""

    model_config = ConfigDict(frozen=True)

    field: str
    message: str

    @field_validator("field", "message")
    @classmethod
    def _redacted(cls, value: str) -> str:
        return redact(value)


class ProblemDetails(BaseModel):
    """The RFC 9457 body every error response carries."""

    type: str
    title: str
    status: int
    detail: str
    instance: str | None = None
    errors: list[FieldError] = Field(default_factory=list)


class Problem(Exception):
    """A request the broker refuses, with everything needed for the HTTP response."""

    status = 400
    slug = "bad-request"
    title = "Bad request"

    def __init__(
        self, detail: str, *, errors: list[FieldError] | None = None, headers: dict[str, str] | None = None
    ) -> None:
        detail = redact(detail)
        super().__init__(detail)
        self.detail = detail
        self.errors = errors or []
        self.headers = headers or {}

    def to_details(self, instance: str | None = None) -> ProblemDetails:
        """The problem as an RFC 9457 body."""
        return ProblemDetails(
            type=PROBLEM_TYPE_BASE + self.slug,
            title=self.title,
            status=self.status,
            detail=self.detail,
            instance=redact(instance) if instance else instance,
            errors=self.errors,
        )

    def to_json(self, instance: str | None = None) -> dict[str, Any]:
        """The problem body as a JSON-ready dict (no empty ``errors`` list)."""
        return self.to_details(instance).model_dump(
            exclude_none=True, exclude={"errors"} if not self.errors else None
        )


class BadRequest(Problem):
    status, slug, title = 400, "bad-request", "Bad request"


class Unauthorized(Problem):
    status, slug, title = 401, "unauthorized", "Unauthorized"


class Forbidden(Problem):
    status, slug, title = 403, "forbidden", "Forbidden"


class NotFound(Problem):
    status, slug, title = 404, "not-found", "Not found"


class Conflict(Problem):
    status, slug, title = 409, "conflict", "Conflict"


class PayloadTooLarge(Problem):
    status, slug, title = 413, "payload-too-large", "Payload too large"


class UnsupportedMediaType(Problem):
    status, slug, title = 415, "unsupported-media-type", "Unsupported media type"


class Unprocessable(Problem):
    status, slug, title = 422, "validation-failed", "The request body is not valid"


class TooManyRequests(Problem):
    status, slug, title = 429, "too-many-requests", "Too many requests"


class ServiceUnavailable(Problem):
    status, slug, title = 503, "service-unavailable", "Service unavailable"


def check_body_size(body: bytes, limit: int, what: str = "request body") -> None:
    """Refuse (413) a body over ``limit`` bytes; call after reading it whole."""
    if len(body) > limit:
        raise PayloadTooLarge(
            f"{what} is {len(body)} bytes; the limit is {limit} bytes",
            errors=[FieldError(field="/", message=f"larger than {limit} bytes")],
        )


HOST_QUERY_PARAMS = frozenset({"code"})
"""Query parameters of the Functions host itself, which every route may carry: ``code`` is the function
key (``?code=<key>``), passed on to the app with the rest of the query."""


def check_query_params(params: Iterable[str], known: Container[str]) -> None:
    """Refuse (400) a query string with parameters the endpoint does not take, each one named (the host's
    own, :data:`HOST_QUERY_PARAMS`, are taken and ignored)."""
    unknown = [name for name in params if name not in known and name not in HOST_QUERY_PARAMS]
    if unknown:
        raise BadRequest(
            f"unknown query parameter(s): {', '.join(unknown)}",
            errors=[FieldError(field=name, message="unknown query parameter") for name in unknown],
        )


def single_field(problem_type: type[Problem], field: str, message: str) -> Problem:
    """A problem about one field, with the field named in both ``detail`` and ``errors``."""
    return problem_type(f"{field}: {message}", errors=[FieldError(field=field, message=message)])


class InternalError(Problem):
    status, slug, title = 500, "internal-error", "Internal error"
