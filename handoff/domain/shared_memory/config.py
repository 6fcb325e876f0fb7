"""Configuration of the shared-memory backends (``sharedMemory.backends[]`` in the registry file).

Each backend names the app setting that holds its token (``secretSetting``), never the token itself;
in Azure that app setting may be a Key Vault reference, which the platform resolves into the value.
"""

from __future__ import annotations

from typing import Annotated, Literal, get_args
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator
from pydantic.alias_generators import to_camel

from handoff.domain.net import is_loopback
from handoff.domain.records import LIFECYCLE_POINTS

BACKEND_NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$"
SETTING_NAME_PATTERN = r"^[A-Za-z_][A-Za-z0-9_]{0,127}$"
HEADER_NAME_PATTERN = r"^[A-Za-z0-9-]{1,64}$"
# How people's entries on a backend's records are read back (humans in the loop): the vendor's signed
# webhook, polling the records of active investigations, both, or not at all.
Inbound = Literal["webhook", "poll", "both", "off"]
Point = Literal["delivered", "handedBack", "failed", "alertResolved"]
DEFAULT_POINTS: tuple[Point, ...] = ("handedBack", "failed")
if set(get_args(Point)) != set(LIFECYCLE_POINTS):
    raise RuntimeError("shared-memory points and lifecycle points differ")


class _BackendBase(BaseModel):
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="forbid", frozen=True)

    name: Annotated[str, Field(pattern=BACKEND_NAME_PATTERN)]
    base_url: str
    secret_setting: Annotated[
        str,
        Field(
            pattern=SETTING_NAME_PATTERN,
            description="Name of the app setting that holds the credential (never the credential).",
        ),
    ]
    on: tuple[Point, ...] = DEFAULT_POINTS
    allow_insecure_local: bool = False
    webhook_secret_setting: Annotated[
        str | None,
        Field(
            pattern=SETTING_NAME_PATTERN,
            description="Name of the app setting that holds the webhook signing secret; without it the "
            "backend's webhook route answers 404 (humans in the loop are off).",
        ),
    ] = None
    own_account: Annotated[
        str | None,
        Field(
            max_length=200,
            description="The broker's own account on the backend (GitHub login, PagerDuty user id, Jira "
            "account id, ServiceNow user name), compared with the vendor's author identifier, never a "
            "display name: its entries are never read back as human notes.",
        ),
    ] = None
    inbound: Annotated[
        Inbound | None,
        Field(
            description="How people's entries are read back: 'webhook' (needs webhookSecretSetting), "
            "'poll' (the broker reads the records of active investigations), 'both' or 'off'. Default: "
            "'webhook' with webhookSecretSetting, else 'off'.",
        ),
    ] = None

    @model_validator(mode="after")
    def _webhook_needs_a_secret(self) -> _BackendBase:
        if self.inbound in ("webhook", "both") and not self.webhook_secret_setting:
            raise ValueError(f"inbound {self.inbound!r} needs webhookSecretSetting")
        return self

    @property
    def inbound_mode(self) -> Inbound:
        """``inbound`` as configured, else ``webhook`` when a webhook secret is named, else ``off``."""
        if self.inbound is not None:
            return self.inbound
        return "webhook" if self.webhook_secret_setting else "off"

    @property
    def takes_webhooks(self) -> bool:
        """Whether ``POST /api/webhooks/{name}`` takes this backend's deliveries."""
        return self.inbound_mode in ("webhook", "both")

    @property
    def polls(self) -> bool:
        """Whether the broker polls the records of active investigations on this backend."""
        return self.inbound_mode in ("poll", "both")

    @property
    def reads_entries(self) -> bool:
        """Whether people's entries on this backend reach the agents at all (records are indexed)."""
        return self.inbound_mode != "off"

    @model_validator(mode="after")
    def _safe_base_url(self) -> _BackendBase:
        parts = urlsplit(self.base_url)
        host = (parts.hostname or "").lower()
        if parts.scheme == "https" and host:
            return self
        if self.allow_insecure_local and parts.scheme in ("http", "https") and is_loopback(host):
            return self
        raise ValueError(
            "baseUrl must be an https URL (http only on loopback with allowInsecureLocal), "
            f"got {self.base_url!r}"
        )

    @property
    def api_base(self) -> str:
        """``baseUrl`` without a trailing slash."""
        return self.base_url.rstrip("/")


class GitHubBackend(_BackendBase):
    """GitHub Issues (github.com or GitHub Enterprise Server's ``/api/v3`` base URL)."""

    type: Literal["github"]
    repo: Annotated[str, Field(pattern=r"^[A-Za-z0-9_.-]+/[A-Za-z0-9_.-]+$")]
    issue: Annotated[int | None, Field(ge=1)] = None
    labels: tuple[str, ...] = ()
    repositories: tuple[Annotated[str, Field(pattern=r"^[A-Za-z0-9_.-]+/[A-Za-z0-9_.-]+$")], ...] = Field(
        default=(),
        description="Other repositories whose issues a handoff's incident reference may name (besides repo).",
    )

    def may_write_to(self, repo: str) -> bool:
        """Whether a caller's incident reference may point the writer at ``repo``: the backend's own
        repository or one listed in ``repositories`` (GitHub compares names case-insensitively)."""
        return repo.lower() in {name.lower() for name in (self.repo, *self.repositories)}


class PagerDutyBackend(_BackendBase):
    """PagerDuty REST API v2 incident notes (``https://api.pagerduty.com`` or the EU service region)."""

    type: Literal["pagerduty"]
    from_email: Annotated[str, Field(pattern=r"^[^@\s]+@[^@\s]+\.[^@\s]+$")]


class ServiceNowBackend(_BackendBase):
    """ServiceNow Table API journal entries on the incident."""

    type: Literal["servicenow"]
    table: Annotated[str, Field(pattern=r"^[A-Za-z0-9_]+$")] = "incident"
    field: Literal["work_notes", "comments"] = "work_notes"

    def record_url(self, sys_id: str) -> str:
        """The record's page in the ServiceNow UI."""
        return f"{self.api_base}/nav_to.do?uri={self.table}.do%3Fsys_id%3D{sys_id}"


class JiraBackend(_BackendBase):
    """Jira Cloud issue comments in Atlassian Document Format."""

    type: Literal["jira"]
    project: Annotated[str | None, Field(pattern=r"^[A-Z][A-Z0-9_]{0,49}$")] = None
    issue: Annotated[str | None, Field(pattern=r"^[A-Z][A-Z0-9_]*-[0-9]+$")] = None
    webhook_auth: tuple[Literal["signature", "token"], ...] = Field(
        default=("signature", "token"),
        min_length=1,
        description="How a Jira delivery proves itself: 'signature' (an admin webhook with a secret, "
        "HMAC-SHA256 in webhookSignatureHeader) and/or 'token' (the secret itself in "
        "X-Handoff-Webhook-Token, from an Automation 'Send web request' rule).",
    )
    webhook_signature_header: Annotated[str, Field(pattern=HEADER_NAME_PATTERN)] = "X-Hub-Signature"

    def may_write_to(self, key: str) -> bool:
        """Whether issue ``key`` is one the backend writes to: inside ``project``, or its ``issue``."""
        key = key.upper()
        if self.project and key.startswith(f"{self.project}-"):
            return True
        return bool(self.issue) and key == self.issue

    def issue_url(self, key: str, comment_id: str | None = None) -> str:
        """The issue's page (focused on a comment) in the Jira UI."""
        focus = f"?focusedCommentId={comment_id}" if comment_id else ""
        return f"{self.api_base}/browse/{key}{focus}"


Backend = Annotated[
    GitHubBackend | PagerDutyBackend | ServiceNowBackend | JiraBackend, Field(discriminator="type")
]
BACKEND_TYPES = ("github", "pagerduty", "servicenow", "jira")
# The backends whose people's entries the broker reads back (humans in the loop): every kind.
WebhookBackend = GitHubBackend | PagerDutyBackend | ServiceNowBackend | JiraBackend


class SharedMemoryConfig(BaseModel):
    """The ``sharedMemory`` section of the registry file."""

    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="forbid", frozen=True)

    backends: list[Backend] = Field(default_factory=list)

    @field_validator("backends")
    @classmethod
    def _unique_names(cls, backends: list[Backend]) -> list[Backend]:
        seen: dict[str, int] = {}
        for index, backend in enumerate(backends):
            key = backend.name.lower()
            if key in seen:
                raise ValueError(
                    f"backends[{index}] repeats the name of backends[{seen[key]}] ({backend.name})"
                )
            seen[key] = index
        return backends

    def find(self, name: str) -> Backend | None:
        """The backend called ``name`` (case-insensitive), or None."""
        return next((b for b in self.backends if b.name.lower() == name.lower()), None)


def unknown_backends(names: tuple[str, ...] | list[str], config: SharedMemoryConfig | None) -> list[str]:
    """The names in ``names`` that are not configured backends."""
    return [name for name in names if config is None or config.find(name) is None]
