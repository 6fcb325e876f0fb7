"""Listing handoffs (``GET /api/handoffs``, MCP ``handoff_list``): the query, the page, the index rows
and the continuation token.

The listing reads an index kept with the state (one entry per handoff, rewritten at each status change),
never the handoffs themselves: one partition per UTC day of creation (``d|20261202``), row key
``<inverted epoch ms of creation>|<handoff id>``, so a partition reads newest first. A page walks day
partitions from the newest backwards, each read by one query with an equality on its partition key
(:class:`IndexFilter` as parameters), down to the day of ``since`` or :data:`DEFAULT_LOOKBACK_DAYS`
before today, reading at most :data:`DAYS_PER_PAGE` partitions per request.

The continuation token says where the next page starts (a day, the last row read in it, and the
oldest day the walk goes to) and is signed with a key of the broker's own (HMAC-SHA256): a token the
broker did not issue, or one changed in any way, is refused with 400 naming ``continuationToken``.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any, get_args

from pydantic import Field

from handoff.domain.errors import BadRequest, Problem, check_query_params, single_field
from handoff.domain.history_rows import time_key
from handoff.domain.models import HandoffStatus, Intent, Severity, WireModel
from handoff.domain.records import HandoffRecord
from handoff.domain.registry import AGENT_NAME_PATTERN

MAX_TOP = 100
DEFAULT_TOP = 20
# Without ``since``, a listing goes back this many days (the day of the request included).
DEFAULT_LOOKBACK_DAYS = 31
# Day partitions one request reads at most; a page that stops there carries a token for the rest.
DAYS_PER_PAGE = 31
QUERY_PARAMS = ("status", "source", "target", "since", "alertRule", "top", "continuationToken")
STATUSES: tuple[str, ...] = get_args(HandoffStatus)
MAX_TITLE = 300
MAX_ALERT_RULE = 260
DAY_PREFIX = "d|"
_NAME = re.compile(AGENT_NAME_PATTERN)
_ROW_KEY = re.compile(r"^[0-9]{13}\|[0-9A-Fa-f-]{32,36}$")  # a handoff id is a UUID
_DAY = re.compile(r"^[0-9]{8}$")
_TIME_KEY = re.compile(r"^[0-9]{13}$")
_TOKEN_CONTEXT = b"handoff-list-token-v2|"
# The times an index row key can say (13 digits of inverted epoch milliseconds): ``since`` stays within
# them, so its bound compares as the row keys do.
EARLIEST_SINCE = datetime(1970, 1, 1, tzinfo=UTC)
LATEST_SINCE = datetime(2200, 1, 1, tzinfo=UTC)


class HandoffSummary(WireModel):
    """One handoff as ``GET /api/handoffs`` lists it (from the index: as of its last status change)."""

    id: str
    status: HandoffStatus
    intent: Intent | None = None
    severity: Severity | None = None
    source: str = Field(description="The source agent's registered name (or a system source).")
    target: str = Field(description="The target agent's registered name.")
    title: str
    created_at: datetime
    updated_at: datetime = Field(description="When its status last changed.")
    alert_rule: str | None = Field(default=None, description="The alert rule that opened it, if any.")
    root_handoff_id: str = Field(description="The root of its chain (itself for a root).")
    parent_handoff_id: str | None = None
    depth: int = 0


class HandoffList(WireModel):
    """Body of ``GET /api/handoffs``: newest first, with a token for the next page (null at the end)."""

    items: list[HandoffSummary]
    continuation_token: str | None = None


@dataclass(frozen=True)
class ListQuery:
    """The validated query of a listing (agent names as given; the service resolves them)."""

    status: str | None = None
    source: str | None = None
    target: str | None = None
    since: datetime | None = None
    alert_rule: str | None = None
    top: int = DEFAULT_TOP
    continuation_token: str | None = None


@dataclass(frozen=True)
class IndexFilter:
    """Equality filters of one day partition's query. Agent names and the alert rule are lowercased
    (the index keeps lowercased copies); ``agents``: only handoffs one of them handed off or received."""

    status: str | None = None
    source: str | None = None
    target: str | None = None
    alert_rule: str | None = None
    agents: frozenset[str] | None = None


@dataclass(frozen=True)
class IndexRow:
    """One entry as a day partition gives it back."""

    row_key: str
    summary: HandoffSummary


@dataclass(frozen=True)
class Cursor:
    """Where a page starts: a day partition, after which row of it (none: from its newest), the oldest
    day the walk goes to, and the row-key bound of ``since`` on that day (so a later page keeps it even
    when the caller does not send ``since`` again)."""

    day: date
    after: str | None
    floor: date
    until: str | None = None


# ---------------------------------------------------------------- the query string


def _bad(field: str, message: str) -> Problem:
    return single_field(BadRequest, field, message)


def parse_list_query(params: Mapping[str, str]) -> ListQuery:
    """Validate the query string: every bad or unknown parameter is a 400 naming it."""
    check_query_params(params, QUERY_PARAMS)
    values = {name: value for name, value in params.items() if value != "" and name in QUERY_PARAMS}
    status = values.get("status")
    if status is not None and status not in STATUSES:
        raise _bad("status", f"must be one of {', '.join(STATUSES)}")
    for name in ("source", "target"):
        if name in values and not _NAME.fullmatch(values[name]):
            raise _bad(name, "must be an agent name: a letter or digit, then up to 62 of A-Z a-z 0-9 _ . -")
    alert_rule = values.get("alertRule")
    if alert_rule is not None and (len(alert_rule) > MAX_ALERT_RULE or not alert_rule.isprintable()):
        raise _bad("alertRule", f"must be at most {MAX_ALERT_RULE} printable characters")
    top = DEFAULT_TOP
    if "top" in values:
        text = values["top"]
        if not re.fullmatch(r"[0-9]{1,4}", text) or not 1 <= int(text) <= MAX_TOP:
            raise _bad("top", f"must be a whole number from 1 to {MAX_TOP}")
        top = int(text)
    token = values.get("continuationToken")
    if token is not None and (len(token) > 512 or not re.fullmatch(r"[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+", token)):
        raise _bad("continuationToken", "not a token this API issued")
    return ListQuery(
        status=status,
        source=values.get("source"),
        target=values.get("target"),
        since=parse_since(values["since"]) if "since" in values else None,
        alert_rule=alert_rule,
        top=top,
        continuation_token=token,
    )


def parse_since(text: str) -> datetime:
    """``since``: an ISO 8601 date or date-time (UTC when it has no offset) from :data:`EARLIEST_SINCE`
    to :data:`LATEST_SINCE` (the times an index row key can say); 400 naming it otherwise."""
    if len(text) > 64 or not re.match(r"^[0-9]{4}-[0-9]{2}-[0-9]{2}", text):
        raise _bad("since", "must be an ISO 8601 date or date-time, e.g. 2026-12-02T08:00:00Z")
    try:
        value = datetime.fromisoformat(text)
        value = (value if value.tzinfo else value.replace(tzinfo=UTC)).astimezone(UTC)
    except (ValueError, OverflowError):  # OverflowError: an offset that takes it past year 1 or 9999
        raise _bad("since", "must be an ISO 8601 date or date-time, e.g. 2026-12-02T08:00:00Z") from None
    if not EARLIEST_SINCE <= value <= LATEST_SINCE:
        raise _bad("since", f"must be from {EARLIEST_SINCE:%Y-%m-%d} to {LATEST_SINCE:%Y-%m-%d}")
    return value


# ---------------------------------------------------------------- index rows


def day_partition(day: date) -> str:
    """Partition key of the handoffs created on ``day`` (UTC)."""
    return f"{DAY_PREFIX}{day:%Y%m%d}"


def utc_day(moment: datetime) -> date:
    """The UTC day of ``moment``."""
    return moment.astimezone(UTC).date()


def row_key(summary: HandoffSummary) -> str:
    """Row key of a handoff's index entry."""
    return f"{time_key(summary.created_at)}|{summary.id}"


def since_bound(since: datetime) -> str:
    """The highest row key of an entry created at ``since`` or later."""
    return f"{time_key(since)}|~"


def summary_of(record: HandoffRecord) -> HandoffSummary:
    """A handoff's index entry, from its record as just written."""
    stored, state = record.stored, record.state
    request = stored.request
    return HandoffSummary(
        id=stored.id,
        status=state.status,
        intent=request.intent,
        severity=request.context.severity,
        source=stored.source_agent,
        target=stored.target_agent,
        title=request.context.title[:MAX_TITLE],
        created_at=stored.created_at,
        updated_at=state.updated_at,
        alert_rule=stored.alert_rule[:MAX_ALERT_RULE] if stored.alert_rule else None,
        root_handoff_id=stored.root_id,
        parent_handoff_id=request.parent_handoff_id,
        depth=stored.depth,
    )


def index_columns(summary: HandoffSummary) -> dict[str, Any]:
    """The index entry's columns (with lowercased copies of what is filtered on)."""
    return {
        "HandoffId": summary.id,
        "Status": summary.status,
        "Intent": summary.intent or "",
        "Severity": summary.severity or "",
        "Source": summary.source,
        "SourceKey": summary.source.lower(),
        "Target": summary.target,
        "TargetKey": summary.target.lower(),
        "Title": summary.title,
        "CreatedAt": summary.created_at,
        "UpdatedAt": summary.updated_at,
        "AlertRule": summary.alert_rule or "",
        "AlertRuleKey": (summary.alert_rule or "").lower(),
        "RootId": summary.root_handoff_id,
        "ParentId": summary.parent_handoff_id or "",
        "Depth": summary.depth,
    }


def summary_from(columns: Mapping[str, Any]) -> HandoffSummary:
    """The summary an index entry holds."""
    return HandoffSummary(
        id=columns["HandoffId"],
        status=columns["Status"],
        intent=columns.get("Intent") or None,
        severity=columns.get("Severity") or None,
        source=columns["Source"],
        target=columns["Target"],
        title=columns.get("Title") or "",
        created_at=columns["CreatedAt"],
        updated_at=columns["UpdatedAt"],
        alert_rule=columns.get("AlertRule") or None,
        root_handoff_id=columns.get("RootId") or columns["HandoffId"],
        parent_handoff_id=columns.get("ParentId") or None,
        depth=int(columns.get("Depth") or 0),
    )


def matches(columns: Mapping[str, Any], where: IndexFilter) -> bool:
    """Whether an entry passes ``where`` (what the storage query's filter says, for in-memory indexes)."""
    pairs = (
        ("Status", where.status),
        ("SourceKey", where.source),
        ("TargetKey", where.target),
        ("AlertRuleKey", where.alert_rule),
    )
    if any(wanted is not None and columns.get(column) != wanted for column, wanted in pairs):
        return False
    return where.agents is None or bool({columns.get("SourceKey"), columns.get("TargetKey")} & where.agents)


# ---------------------------------------------------------------- the walk and its token


def start_cursor(query: ListQuery, now: datetime, skew: timedelta) -> Cursor:
    """Where the first page starts: today (or tomorrow within ``skew`` of midnight, for a clock behind
    the writer's), down to the day of ``since`` or :data:`DEFAULT_LOOKBACK_DAYS` back."""
    today = utc_day(now + skew)
    if query.since is not None:
        return Cursor(day=today, after=None, floor=utc_day(query.since), until=since_bound(query.since))
    return Cursor(day=today, after=None, floor=utc_day(now) - timedelta(days=DEFAULT_LOOKBACK_DAYS - 1))


def _sign(key: bytes, payload: str) -> str:
    digest = hmac.new(key, _TOKEN_CONTEXT + payload.encode(), hashlib.sha256).digest()[:18]
    return base64.urlsafe_b64encode(digest).decode().rstrip("=")


def encode_cursor(cursor: Cursor, key: bytes) -> str:
    """The continuation token of ``cursor``: its fields, and their signature under ``key``."""
    until = cursor.until.removesuffix("|~") if cursor.until else ""
    payload = f"{cursor.day:%Y%m%d}|{cursor.floor:%Y%m%d}|{until}|{cursor.after or ''}"
    body = base64.urlsafe_b64encode(payload.encode()).decode().rstrip("=")
    return f"{body}.{_sign(key, payload)}"


def decode_cursor(token: str, key: bytes) -> Cursor:
    """The cursor in a token this broker issued (400 naming ``continuationToken`` for anything else:
    not signed by the broker, changed, or not of this shape)."""
    refused = _bad("continuationToken", "not a token this API issued")
    body, _, signature = token.partition(".")
    try:
        payload = base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)).decode("ascii")
    except (binascii.Error, UnicodeDecodeError, ValueError):
        raise refused from None
    if not hmac.compare_digest(_sign(key, payload), signature):
        raise refused
    parts = payload.split("|", 3)
    if len(parts) != 4 or not _DAY.match(parts[0]) or not _DAY.match(parts[1]):
        raise refused
    if parts[2] and not _TIME_KEY.match(parts[2]):
        raise refused
    until = f"{parts[2]}|~" if parts[2] else None
    after = parts[3] or None
    if after is not None and not _ROW_KEY.match(after):
        raise refused
    try:
        day, floor = (datetime.strptime(part, "%Y%m%d").date() for part in parts[:2])
    except ValueError:
        raise refused from None
    if floor > day:
        raise refused
    return Cursor(day=day, after=after, floor=floor, until=until)
