"""Wire models: what callers send and what the broker answers (JSON camelCase, like Azure REST).

These models are the single source of the request schemas: the REST API, the OpenAPI document and
any other entrypoint validate with them.
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    model_validator,
)
from pydantic.alias_generators import to_camel

from handoff.domain.errors import FieldError

Severity = Literal["Sev0", "Sev1", "Sev2", "Sev3", "Sev4"]
Intent = Literal["investigate", "rootCause", "mitigate", "consult"]
Outcome = Literal["rootCauseFound", "mitigated", "needsAction", "unableToDetermine", "declined", "reported"]
# inputRequired, rejected and canceled come from A2A targets (their task states of the same names).
HandoffStatus = Literal[
    "accepted", "delivered", "handedBack", "failed", "inputRequired", "rejected", "canceled"
]

_ARM_ID = re.compile(
    r"^/subscriptions/[^/]+(/resourceGroups/[^/]+)?(/providers/[^/]+(/[^/]+/[^/]+)+)?/?$", re.IGNORECASE
)


def _any_case(word: str) -> str:
    """``word`` as an ECMA-262 pattern that ignores case (JSON Schema patterns take no flags)."""
    return "".join(f"[{c.upper()}{c.lower()}]" if c.isalpha() else re.escape(c) for c in word)


# The rules of the two validators below, for JSON Schema readers (the validators' messages stay).
ARM_ID_PATTERN = (
    f"^/{_any_case('subscriptions')}/[^/]+(/{_any_case('resourceGroups')}/[^/]+)?"
    f"(/{_any_case('providers')}/[^/]+(/[^/]+/[^/]+)+)?/?$"
)
HTTP_URL_PATTERN = r"^https?://[^\s/]+"


def _arm_id(value: str) -> str:
    if not _ARM_ID.match(value):
        raise ValueError(
            "must be an Azure resource ID such as "
            "/subscriptions/<id>/resourceGroups/<rg>/providers/<namespace>/<type>/<name>"
        )
    return value


def _http_url(value: str) -> str:
    if not re.match(HTTP_URL_PATTERN, value):
        raise ValueError("must be an absolute http(s) URL")
    return value


# Ids that end up as one segment of an agent's URL path (thread ids). The SRE Agent API does not
# document their shape, so the rule is exactly "one safe path segment": letters, digits, '-', '_', '.',
# not '.' or '..', 1-256 characters. The pattern says the same for JSON Schema readers (no lookaround).
PATH_SEGMENT_MAX = 256
PATH_SEGMENT_PATTERN = r"^([A-Za-z0-9_-][A-Za-z0-9._-]*|\.[A-Za-z0-9_-][A-Za-z0-9._-]*|\.\.[A-Za-z0-9._-]+)$"
PATH_SEGMENT_MESSAGE = (
    f"must be 1-{PATH_SEGMENT_MAX} characters of letters, digits, '-', '_' and '.' (one URL path segment), "
    "and not '.' or '..'"
)
_PATH_SEGMENT = re.compile(rf"[A-Za-z0-9._-]{{1,{PATH_SEGMENT_MAX}}}")


def is_path_segment_id(value: object) -> bool:
    """Whether ``value`` is a string that is safe as one URL path segment (see :data:`PathSegmentId`)."""
    return isinstance(value, str) and _PATH_SEGMENT.fullmatch(value) is not None and value not in (".", "..")


def check_path_segment_id(value: str) -> str:
    """``value`` when it is a safe path-segment id; ``ValueError`` with the rule otherwise."""
    if not is_path_segment_id(value):
        raise ValueError(PATH_SEGMENT_MESSAGE)
    return value


def _path_segment_before(value: Any) -> Any:
    # Before whitespace stripping: " t", "t\n" are refused, not quietly trimmed into another id.
    return check_path_segment_id(value) if isinstance(value, str) else value


# PagerDuty incident ids (PT4KHLK, Q02JTSNZWHSEKV) key the index of the records people answer on: one
# named for PagerDuty is held to that shape at the door; read anywhere else, one of another shape is
# ignored.
PAGERDUTY_INCIDENT_ID_MAX = 64
PAGERDUTY_INCIDENT_ID_MESSAGE = (
    f"must be a PagerDuty incident id: 1-{PAGERDUTY_INCIDENT_ID_MAX} uppercase letters and digits (PT4KHLK)"
)
_PAGERDUTY_INCIDENT_ID = re.compile(rf"[A-Z0-9]{{1,{PAGERDUTY_INCIDENT_ID_MAX}}}")
# The validation context of a document from outside (domain/intake.py): rules only a new document must
# follow are checked under it, so what was stored before them is still read back.
FROM_OUTSIDE = "fromOutside"


def is_pagerduty_incident_id(value: object) -> bool:
    """Whether ``value`` is a string of PagerDuty's incident id shape (uppercase letters and digits)."""
    return isinstance(value, str) and _PAGERDUTY_INCIDENT_ID.fullmatch(value) is not None


def from_outside(info: ValidationInfo) -> bool:
    """Whether a validator runs on a document from outside (validated with ``{FROM_OUTSIDE: True}``)."""
    return isinstance(info.context, dict) and info.context.get(FROM_OUTSIDE) is True


ArmResourceId = Annotated[
    str, Field(max_length=1024, json_schema_extra={"pattern": ARM_ID_PATTERN}), AfterValidator(_arm_id)
]
HttpUrl = Annotated[
    str, Field(max_length=4096, json_schema_extra={"pattern": HTTP_URL_PATTERN}), AfterValidator(_http_url)
]
# The contract these models are (spec/handoff-context/v1): a request or hand-back may name it, as an
# Azure Monitor alert names the common alert schema. Accepted, never stored or echoed: a body with the
# marks is the same request as one without (same Idempotency-Key hash, same handoff).
ContractSchemaId = Literal["handoffContext"]
CONTRACT_SCHEMA_ID: ContractSchemaId = "handoffContext"
CONTRACT_VERSION = "1.0"
CONTRACT_VERSION_PATTERN = r"^1\.(0|[1-9][0-9]*)$"


def _contract_version(value: str) -> str:
    if not re.match(CONTRACT_VERSION_PATTERN, value):
        raise ValueError(
            f"must be 1.<minor>: this broker speaks version 1 of the {CONTRACT_SCHEMA_ID} schema"
        )
    return value


ContractVersion = Annotated[
    str,
    Field(max_length=16, json_schema_extra={"pattern": CONTRACT_VERSION_PATTERN}),
    AfterValidator(_contract_version),
]
SCHEMA_ID_DESCRIPTION = (
    f"Optional. '{CONTRACT_SCHEMA_ID}': names the contract this document follows. Accepted, not stored."
)
SCHEMA_VERSION_DESCRIPTION = (
    "Optional. The contract version the sender wrote (1.0, 1.1, ...); any 1.x is accepted and changes "
    "nothing. Not stored."
)

ShortText = Annotated[str, Field(min_length=1, max_length=512)]
LongText = Annotated[str, Field(min_length=1, max_length=65536)]
PathSegmentId = Annotated[
    str,
    Field(min_length=1, max_length=PATH_SEGMENT_MAX, pattern=PATH_SEGMENT_PATTERN),
    BeforeValidator(_path_segment_before),
]


class WireModel(BaseModel):
    """Base of every wire model: camelCase on the wire, unknown fields refused."""

    model_config = ConfigDict(
        alias_generator=to_camel, populate_by_name=True, extra="forbid", str_strip_whitespace=True
    )

    def to_wire(self) -> dict[str, Any]:
        """The model as JSON-ready camelCase data, without unset optional fields."""
        return self.model_dump(mode="json", by_alias=True, exclude_none=True)


# ---------------------------------------------------------------- evidence


class KqlEvidence(WireModel):
    """Result of a KQL query: the query plus a table of rows."""

    kind: Literal["kql"]
    title: ShortText
    query: LongText
    columns: list[ShortText] = Field(default_factory=list, max_length=200)
    rows: list[list[Any]] = Field(default_factory=list)
    workspace: str | None = Field(default=None, max_length=1024)
    truncated_rows: int | None = Field(default=None, ge=0, description="Rows cut by the broker.")

    @model_validator(mode="after")
    def _rows_match_columns(self) -> KqlEvidence:
        for index, row in enumerate(self.rows):
            if len(row) != len(self.columns):
                raise _PointedError(
                    ("rows", index),
                    f"row has {len(row)} values but there are {len(self.columns)} columns",
                )
        return self


class LinkEvidence(WireModel):
    """A link to a dashboard, a run book, a log view."""

    kind: Literal["link"]
    title: ShortText
    url: HttpUrl


class NoteEvidence(WireModel):
    """A free-text observation."""

    kind: Literal["note"]
    title: ShortText | None = None
    content: LongText


class DataEvidence(WireModel):
    """Structured data that fits no other kind (for example a raw alert context)."""

    kind: Literal["data"]
    title: ShortText
    data: dict[str, Any]


Evidence = Annotated[KqlEvidence | LinkEvidence | NoteEvidence | DataEvidence, Field(discriminator="kind")]
EVIDENCE_KINDS = ("kql", "link", "note", "data")


class _PointedError(ValueError):
    """A validation error raised inside a model that knows the sub-path it is about."""

    def __init__(self, path: tuple[str | int, ...], message: str) -> None:
        super().__init__(message)
        self.path = path


# ---------------------------------------------------------------- handoff request


class IncidentRef(WireModel):
    """The incident or work item this investigation belongs to."""

    id: Annotated[
        ShortText,
        Field(
            description="The incident's id on its platform; for platform pagerduty, PagerDuty's incident id "
            f"(1-{PAGERDUTY_INCIDENT_ID_MAX} uppercase letters and digits, such as PT4KHLK)."
        ),
    ]
    url: HttpUrl | None = None
    platform: str | None = Field(default=None, max_length=64, examples=["pagerduty", "servicenow", "github"])

    @model_validator(mode="after")
    def _pagerduty_incident_id(self, info: ValidationInfo) -> IncidentRef:
        if from_outside(info) and self.is_on("pagerduty") and not is_pagerduty_incident_id(self.id):
            raise _PointedError(("id",), PAGERDUTY_INCIDENT_ID_MESSAGE)
        return self

    def is_on(self, platform: str) -> bool:
        """Whether the incident is on ``platform`` (named in any case)."""
        return (self.platform or "").lower() == platform


class HandoffContext(WireModel):
    """Everything agent B needs to start without asking agent A."""

    title: Annotated[str, Field(min_length=1, max_length=300)]
    summary: LongText
    severity: Severity
    resources: list[ArmResourceId] = Field(default_factory=list, max_length=100)
    evidence: list[Evidence] = Field(default_factory=list, max_length=100)
    hypotheses: list[LongText] = Field(default_factory=list, max_length=50)
    actions_taken: list[LongText] = Field(default_factory=list, max_length=50)
    incident: IncidentRef | None = None


class SourceRef(WireModel):
    """Who hands off: a registered agent (name or resource ID) and its thread."""

    agent: ShortText
    thread_id: PathSegmentId | None = None


class TargetRef(WireModel):
    """Who receives the handoff: a registered agent (name or resource ID)."""

    agent: ShortText


class AutoHandback(WireModel):
    """Watch B's thread after delivery and hand B's final reply back when B does not hand back itself."""

    after_minutes: float = Field(
        ge=0, le=10080, description="Minutes after B's reply is complete before the broker hands it back."
    )
    max_watch_minutes: float = Field(
        default=240, gt=0, le=10080, description="Stop watching B's thread this long after delivery."
    )


class HandoffRequest(WireModel):
    """Body of ``POST /api/handoffs``."""

    source: SourceRef
    target: TargetRef
    intent: Intent = "investigate"
    context: HandoffContext
    parent_handoff_id: ShortText | None = None
    correlation_id: ShortText | None = None
    auto_handback: AutoHandback | None = None
    schema_id: ContractSchemaId | None = Field(default=None, exclude=True, description=SCHEMA_ID_DESCRIPTION)
    schema_version: ContractVersion | None = Field(
        default=None, exclude=True, description=SCHEMA_VERSION_DESCRIPTION
    )


class HandbackRequest(WireModel):
    """Body of ``POST /api/handoffs/{id}/handback``: agent B's findings."""

    agent: ShortText
    thread_id: PathSegmentId | None = None
    outcome: Outcome
    summary: LongText
    root_cause: LongText | None = None
    recommended_actions: list[LongText] = Field(default_factory=list, max_length=50)
    evidence: list[Evidence] = Field(default_factory=list, max_length=100)
    schema_id: ContractSchemaId | None = Field(default=None, exclude=True, description=SCHEMA_ID_DESCRIPTION)
    schema_version: ContractVersion | None = Field(
        default=None, exclude=True, description=SCHEMA_VERSION_DESCRIPTION
    )


# ---------------------------------------------------------------- responses


class ThreadEndpoint(WireModel):
    """One side of a handoff: the agent and, once known, its thread with a portal deep link."""

    agent: str
    resource_id: str | None = None
    thread_id: str | None = None
    thread_url: str | None = None
    task_id: str | None = Field(default=None, description="The A2A task id, for agents reached over A2A.")


class HandbackView(WireModel):
    """A hand-back as stored, with its delivery into the source thread."""

    seq: int
    received_at: datetime
    agent: str
    thread_id: str | None = None
    outcome: Outcome
    summary: str
    root_cause: str | None = None
    recommended_actions: list[str] = Field(default_factory=list)
    evidence: list[Evidence] = Field(default_factory=list)
    delivery: Literal["pending", "posted", "failed", "noSourceThread"] = "pending"
    posted_at: datetime | None = None
    automatic: bool = Field(
        default=False, description="True when the broker handed back B's final reply because B did not."
    )


class ChainLink(WireModel):
    """Another handoff of the same chain (the parent or a child), as the chain view lists it."""

    id: str
    source: str | None = Field(default=None, description="Registered name of the agent that handed off.")
    target: str | None = Field(default=None, description="Registered name of the agent that received it.")
    depth: int | None = Field(default=None, description="Ancestors through parentHandoffId (root = 0).")
    created_at: datetime | None = None
    link: str | None = None


class HandoffChain(WireModel):
    """Where a handoff sits in its chain: its parent and the handoffs made from it."""

    parent: ChainLink | None = None
    children: list[ChainLink] = Field(default_factory=list)


class HandoffWarning(WireModel):
    """Something that went wrong beside the handoff's own status (which it does not change)."""

    code: Literal["crossLinkFailed"] = Field(
        description="crossLinkFailed: the link to B's thread could not be posted into the source thread "
        "(often a source thread id that the source agent does not have)."
    )
    detail: str


class HandoffView(WireModel):
    """Body of ``GET /api/handoffs/{id}`` (and of the ``202`` that accepts a handoff)."""

    id: str
    status: HandoffStatus
    intent: Intent
    source: ThreadEndpoint
    target: ThreadEndpoint
    context: HandoffContext
    parent_handoff_id: str | None = None
    root_handoff_id: str
    correlation_id: str | None = None
    created_at: datetime
    updated_at: datetime
    delivered_at: datetime | None = None
    handed_back_at: datetime | None = None
    attempts: int = 0
    last_error: str | None = None
    handbacks: list[HandbackView] = Field(default_factory=list)
    links: dict[str, str] = Field(default_factory=dict)
    depth: int = Field(default=0, description="Ancestors through parentHandoffId (a root handoff has 0).")
    chain: HandoffChain | None = Field(
        default=None, description="Parent and children in the chain (on GET /api/handoffs/{id})."
    )
    warnings: list[HandoffWarning] = Field(
        default_factory=list, description="Problems beside the status, e.g. a failed cross-link."
    )


class AuditEvent(WireModel):
    """One append-only audit record, chained to the one before it (see handoff/domain/audit.py)."""

    seq: int
    at: datetime
    type: str
    actor: str
    details: dict[str, Any] = Field(default_factory=dict)
    hash: str | None = Field(default=None, description="SHA-256 of this event's canonical JSON.")
    prev_hash: str | None = Field(default=None, description="The previous event's hash (none for the first).")


class AuditLog(WireModel):
    """Body of ``GET /api/handoffs/{id}/audit``: one page of events, oldest first."""

    handoff_id: str
    events: list[AuditEvent]
    continuation_token: str | None = Field(
        default=None, description="Pass as continuationToken for the next page; absent on the last page."
    )


class ThreadLink(WireModel):
    """An edge of the thread graph: ``thread`` handed off to, or received from, ``peer``."""

    handoff_id: str
    relation: Literal["handedOffTo", "receivedFrom"]
    thread: ThreadEndpoint
    peer: ThreadEndpoint
    hops: int = Field(description="1 for a direct link of the queried thread, 2+ further along a chain.")


class ThreadLinks(WireModel):
    """Body of the links endpoints."""

    agent: str
    thread_id: str
    links: list[ThreadLink]


class Health(WireModel):
    """Body of ``GET /api/health``."""

    status: Literal["healthy", "unhealthy"]
    storage: Literal["reachable", "unreachable"]
    detail: str | None = None


# ---------------------------------------------------------------- parsing


def field_errors(error: ValidationError, prefix: str = "") -> list[FieldError]:
    """Turn a pydantic error into JSON-Pointer field errors (``/context/severity``)."""
    result = []
    for item in error.errors(include_url=False):
        loc = [part for part in item["loc"] if not _is_union_tag(part)]
        message = item["msg"]
        ctx_error = item.get("ctx", {}).get("error")
        if isinstance(ctx_error, _PointedError):
            loc.extend(ctx_error.path)
            message = str(ctx_error)
        elif message.startswith("Value error, "):
            message = message.removeprefix("Value error, ")
        pointer = prefix + "".join(f"/{_escape_pointer(str(part))}" for part in loc)
        result.append(FieldError(field=pointer or "/", message=message))
    return result


def _is_union_tag(part: str | int) -> bool:
    # Discriminated unions put the tag ("kql", "link", ...) into the error location; the caller's
    # JSON has no such level.
    return isinstance(part, str) and part in EVIDENCE_KINDS


def _escape_pointer(token: str) -> str:
    return token.replace("~", "~0").replace("/", "~1")
