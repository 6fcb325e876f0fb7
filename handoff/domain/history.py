"""Searchable history of investigations, for people and for the next agent.

Every hand-back writes index entries (see :class:`handoff.domain.records.HistoryIndex`): one per scope of each
resource in the handoff — the resource itself, its parent resources, its resource group and its
subscription, lowercased — plus one in an "all" partition. A lookup by resource, resource-group prefix
or subscription prefix is therefore a single-partition query, and row keys sort newest first.
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from pydantic import Field, ValidationError

from handoff.domain.errors import BadRequest, FieldError, Unprocessable, check_query_params, single_field
from handoff.domain.models import Outcome, WireModel

MAX_TOP = 100
DEFAULT_TOP = 20
ALL_PARTITION = "all"
QUERY_PARAMS = (
    "resource",
    "alertRule",
    "agent",
    "outcome",
    "since",
    "until",
    "q",
    "top",
    "continuationToken",
)
_SCOPE_START = re.compile(r"^/subscriptions/[^/]+", re.IGNORECASE)


MAX_RESOURCE_LEVELS = 6
"""Type/name levels of one resource ID that are scopes of their own. Real IDs nest two to five deep
(an API Management operation's policy, an extension resource); a caller's ID of 1,024 characters can
nest hundreds deep, and every scope is a row written per hand-back."""


def scopes_of(resource_id: str) -> list[str]:
    """The resource and every ancestor scope, lowercased, most specific first.

    ``/subscriptions/s/resourceGroups/rg/providers/Microsoft.Web/sites/app/slots/x`` gives the slot, the
    site, the resource group and the subscription. Past :data:`MAX_RESOURCE_LEVELS` levels under the
    provider, only the outermost ones and the resource itself are scopes.
    """
    parts = [p for p in resource_id.strip().lower().split("/") if p]
    if len(parts) < 2 or parts[0] != "subscriptions":
        return []
    scopes = [f"/subscriptions/{parts[1]}"]
    rest = parts[2:]
    if len(rest) >= 2 and rest[0] == "resourcegroups":
        scopes.append(f"{scopes[-1]}/resourcegroups/{rest[1]}")
        rest = rest[2:]
    if len(rest) >= 4 and rest[0] == "providers":
        current = f"{scopes[-1]}/providers/{rest[1]}"
        pairs = rest[2:]
        levels = []
        for index in range(0, len(pairs) - 1, 2):
            current += f"/{pairs[index]}/{pairs[index + 1]}"
            levels.append(current)
        if len(levels) > MAX_RESOURCE_LEVELS:  # the outermost levels and the resource itself
            levels = [*levels[: MAX_RESOURCE_LEVELS - 1], levels[-1]]
        scopes.extend(levels)
    return list(reversed(scopes))


def resource_group_of(resource_id: str) -> str | None:
    """The lowercased resource-group scope of a resource ID, if it has one."""
    return next((s for s in scopes_of(resource_id) if s.count("/") == 4 and "/resourcegroups/" in s), None)


class HumanNote(WireModel):
    """What a person wrote on the investigation's record (GitHub comment, PagerDuty note), redacted."""

    backend: str
    entry_id: str
    author: str
    at: datetime
    text: str
    url: str | None = None
    override: bool = False


class HistoryItem(WireModel):
    """One earlier investigation (one hand-back), as ``GET /api/history`` lists it."""

    handoff_id: str
    title: str
    resources: list[str] = Field(default_factory=list)
    source: str
    target: str
    outcome: Outcome
    root_cause: str | None = None
    recommended_actions: list[str] = Field(default_factory=list)
    thread_urls: dict[str, str] = Field(
        default_factory=dict, description="Deep links by role: source, target."
    )
    handed_back_at: datetime
    human_notes: list[HumanNote] = Field(
        default_factory=list, description="What people wrote on the investigation's records, oldest first."
    )


class HistoryPage(WireModel):
    """Body of ``GET /api/history``: newest first, with a token for the next page."""

    items: list[HistoryItem]
    continuation_token: str | None = None


class HistoryQuery(WireModel):
    """Query parameters of ``GET /api/history``."""

    resource: str | None = Field(default=None, max_length=1024)
    alert_rule: str | None = Field(default=None, max_length=1024)
    agent: str | None = Field(default=None, max_length=1024)
    outcome: Outcome | None = None
    since: datetime | None = None
    until: datetime | None = None
    q: str | None = Field(default=None, max_length=500)
    top: int = Field(default=DEFAULT_TOP, ge=1, le=MAX_TOP)
    continuation_token: str | None = Field(default=None, max_length=2048)

    @property
    def partition_scope(self) -> str:
        """The index partition this query reads."""
        if not self.resource:
            return ALL_PARTITION
        return self.resource.strip().rstrip("/").lower()


def parse_history_query(params: Mapping[str, str]) -> HistoryQuery:
    """Validate the query string; unknown or bad parameters are named in the problem."""
    check_query_params(params, QUERY_PARAMS)
    try:
        query = HistoryQuery.model_validate(
            {k: v for k, v in params.items() if v != "" and k in QUERY_PARAMS}
        )
    except ValidationError as exc:
        errors = [
            FieldError(field=str(item["loc"][0]) if item["loc"] else "/", message=item["msg"])
            for item in exc.errors(include_url=False)
        ]
        raise Unprocessable("; ".join(f"{e.field}: {e.message}" for e in errors), errors=errors) from None
    if query.resource and not _SCOPE_START.match(query.resource.strip()):
        raise single_field(
            Unprocessable, "resource", "must be an Azure resource ID or a /subscriptions/... prefix"
        )
    # A time without an offset is UTC, so that it compares with one that has an offset.
    query = query.model_copy(
        update={
            key: as_utc(value) for key, value in (("since", query.since), ("until", query.until)) if value
        }
    )
    if query.since and query.until and query.since > query.until:
        raise single_field(Unprocessable, "since", "must not be after until")
    if query.continuation_token:
        decode_token(query.continuation_token)
    return query


def as_utc(value: datetime) -> datetime:
    """``value`` with UTC as its offset when it has none."""
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def encode_token(row_key: str) -> str:
    """An opaque continuation token for the row after ``row_key``."""
    return base64.urlsafe_b64encode(row_key.encode()).decode().rstrip("=")


def decode_token(token: str) -> str:
    """The row key inside a continuation token (400 naming the parameter when it is not one)."""
    try:
        text = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)).decode()
    except (binascii.Error, UnicodeDecodeError, ValueError):
        text = ""
    if not re.match(r"^[0-9]{13}\|", text):
        raise single_field(BadRequest, "continuationToken", "not a token this API issued")
    return text


def matches_text(item: Mapping[str, Any], q: str | None) -> bool:
    """Free-text match over title, summary and root cause: every word must appear (case-insensitive)."""
    if not q:
        return True
    haystack = " ".join(str(item.get(key) or "") for key in ("title", "summary", "rootCause")).lower()
    return all(word in haystack for word in q.lower().split())
