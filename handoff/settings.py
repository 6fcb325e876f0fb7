"""Application settings, read once from the environment.

Every environment variable the broker reads is a field here, so there is one place that says what the
app needs and the deployment templates can be checked against it. Fields marked ``deploy=True`` are
app settings the Bicep templates must set; ``platform=True`` fields are set by the Azure Functions
platform itself; the rest are optional tunables with safe defaults.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from functools import lru_cache
from pathlib import Path
from typing import Any, Literal, NamedTuple
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, field_validator
from pydantic.config import JsonDict
from pydantic.fields import FieldInfo

from handoff.domain.messages import PORTAL_BASE
from handoff.domain.net import is_loopback, parse_networks
from handoff.domain.shared_memory.polling import poll_schedule

APP_ROOT = Path(__file__).resolve().parent.parent

# Storage resources the app uses. The Bicep templates create exactly these; the app also creates
# them on first use so a fresh Azurite works without a setup step.
DELIVERY_QUEUE = "handoff-deliveries"
DELIVERY_POISON_QUEUE = f"{DELIVERY_QUEUE}-poison"
SHARED_MEMORY_QUEUE = "shared-memory-writes"
SHARED_MEMORY_POISON_QUEUE = f"{SHARED_MEMORY_QUEUE}-poison"
STORAGE_QUEUES: tuple[str, ...] = (
    DELIVERY_QUEUE,
    DELIVERY_POISON_QUEUE,
    SHARED_MEMORY_QUEUE,
    SHARED_MEMORY_POISON_QUEUE,
)
# Every handoff in one partition of its own: request, state, hand-backs, audit events and (for the root
# of a chain) the chain index (storage layout 2: handoff/adapters/azure_storage/layout.py).
HANDOFF_TABLE = "handoffs"
LINK_TABLE = "handofflinks"
# Azure Monitor alerts: one row per alert id (insert-if-absent dedupe), storm and note state, alert log.
ALERT_TABLE = "handoffalerts"
HISTORY_TABLE = "handoffhistory"
# What GET /api/handoffs lists: one entry per handoff, partition per UTC day of creation, newest first.
INDEX_TABLE = "handoffindex"
SHARED_MEMORY_TABLE = "sharedmemory"
STORAGE_TABLES: tuple[str, ...] = (
    HANDOFF_TABLE,
    LINK_TABLE,
    ALERT_TABLE,
    HISTORY_TABLE,
    INDEX_TABLE,
    SHARED_MEMORY_TABLE,
)

# Name of the app's own storage connection (separate from AzureWebJobsStorage, the host's).
STORAGE_CONNECTION = "HANDOFF_STORAGE"


def _setting(env: str, *, deploy: bool = False, platform: bool = False, **kwargs: Any) -> Any:
    # Any: what pydantic's Field returns (and takes), so a field's default type-checks as its annotation.
    extra: JsonDict = {"env": env, "deploy": deploy, "platform": platform}
    return Field(json_schema_extra=extra, **kwargs)


class _Env(NamedTuple):
    """The environment variable behind a setting, and its flags (see :func:`_setting`)."""

    name: str
    deploy: bool
    platform: bool


def _env_of(field: FieldInfo) -> _Env:
    extra = field.json_schema_extra
    if not isinstance(extra, dict):
        raise TypeError("every setting is declared with _setting, which names its environment variable")
    return _Env(str(extra["env"]), extra["deploy"] is True, extra["platform"] is True)


class Settings(BaseModel):
    """The broker's settings. Build with :func:`get_settings` (cached) or :meth:`from_env`."""

    model_config = ConfigDict(frozen=True)

    config_path: str = _setting("HANDOFF_CONFIG", deploy=True, default="handoff.config.json")
    storage_connection_string: str | None = _setting(STORAGE_CONNECTION, default=None)
    storage_queue_service_uri: str | None = _setting(
        f"{STORAGE_CONNECTION}__queueServiceUri", deploy=True, default=None
    )
    storage_table_service_uri: str | None = _setting(
        f"{STORAGE_CONNECTION}__tableServiceUri", deploy=True, default=None
    )
    storage_credential: str | None = _setting(f"{STORAGE_CONNECTION}__credential", deploy=True, default=None)
    storage_client_id: str | None = _setting(f"{STORAGE_CONNECTION}__clientId", deploy=True, default=None)
    azure_client_id: str | None = _setting("AZURE_CLIENT_ID", deploy=True, default=None)
    http_auth_level: Literal["function", "anonymous"] = _setting(
        "HANDOFF_HTTP_AUTH_LEVEL", deploy=True, default="function"
    )
    arm_endpoint: str = _setting("HANDOFF_ARM_ENDPOINT", default="https://management.azure.com")
    # Where the thread links the broker writes (into threads, views and shared memory) open: the SRE Agent
    # portal; `make run` points it at the simulated agents' pages (devserver/fakes/portal.py).
    portal_url: str = _setting("HANDOFF_PORTAL_URL", default=PORTAL_BASE)
    public_base_url: str | None = _setting("HANDOFF_PUBLIC_URL", default=None)
    website_hostname: str | None = _setting("WEBSITE_HOSTNAME", platform=True, default=None)
    identity_endpoint: str | None = _setting("IDENTITY_ENDPOINT", platform=True, default=None)
    # Set by App Service when App Service Authentication is on: only then are X-MS-CLIENT-PRINCIPAL*
    # headers the platform's word rather than the caller's.
    website_auth_enabled: bool = _setting("WEBSITE_AUTH_ENABLED", platform=True, default=False)
    # App Service Authentication also covers /api/mcp (it is excluded by default): only then are principal
    # headers on MCP requests the platform's word.
    mcp_entra_auth: bool = _setting("HANDOFF_MCP_ENTRA_AUTH", default=False)
    rate_limit_per_minute: int = _setting("HANDOFF_RATE_LIMIT_PER_MINUTE", default=600, ge=0)
    rate_limit_burst: int = _setting("HANDOFF_RATE_LIMIT_BURST", default=100, ge=1)
    max_delivery_attempts: int = _setting("HANDOFF_MAX_DELIVERY_ATTEMPTS", default=8, ge=1, le=50)
    retry_base_seconds: float = _setting("HANDOFF_RETRY_BASE_SECONDS", default=2.0, ge=0)
    retry_max_seconds: float = _setting("HANDOFF_RETRY_MAX_SECONDS", default=300.0, ge=0)
    start_message_budget_bytes: int = _setting(
        "HANDOFF_START_MESSAGE_BUDGET_BYTES", default=24 * 1024, ge=2048
    )
    sweep_after_seconds: int = _setting("HANDOFF_SWEEP_AFTER_SECONDS", default=60, ge=10)
    # NCRONTAB (six fields, seconds first) of the sweeper's timer, read when the app is indexed.
    sweep_schedule: str = _setting("HANDOFF_SWEEP_SCHEDULE", default="*/30 * * * * *")
    # How long a worker's claim on a handoff lasts without a state write of its own (each one renews
    # it); a crashed worker's handoff is free again after this. Never shorter than two HTTP timeouts.
    lease_seconds: int = _setting("HANDOFF_LEASE_SECONDS", default=60, ge=5, le=3600)
    # How far the agents' clocks may be from the broker's when a retry pages back through a thread
    # for what an earlier attempt posted (it stops at messages older than that attempt minus this).
    clock_skew_seconds: int = _setting("HANDOFF_CLOCK_SKEW_SECONDS", default=300, ge=0, le=86400)
    http_timeout_seconds: float = _setting("HANDOFF_HTTP_TIMEOUT_SECONDS", default=30.0, gt=0)
    max_chain_depth: int = _setting("HANDOFF_MAX_CHAIN_DEPTH", default=5, ge=0, le=100)
    max_pair_repeats: int = _setting("HANDOFF_MAX_PAIR_REPEATS", default=2, ge=1, le=100)
    mcp_allowed_hosts: str | None = _setting("HANDOFF_MCP_ALLOWED_HOSTS", default=None)
    # Follow-up work after delivery: polling A2A tasks and watching SRE Agent threads (auto hand-back).
    poll_interval_seconds: float = _setting("HANDOFF_POLL_INTERVAL_SECONDS", default=30.0, ge=0, le=3600)
    a2a_max_poll_minutes: float = _setting("HANDOFF_A2A_MAX_POLL_MINUTES", default=240.0, gt=0, le=10080)
    # Azure Monitor alerts. With an audience and a tenant, /api/alerts requires a secure-webhook token.
    alerts_audience: str | None = _setting("HANDOFF_ALERTS_AUDIENCE", deploy=True, default=None)
    alerts_tenant_id: str | None = _setting("HANDOFF_ALERTS_TENANT_ID", deploy=True, default=None)
    alerts_authority: str = _setting("HANDOFF_ALERTS_AUTHORITY", default="https://login.microsoftonline.com")
    alerts_refire_note_seconds: int = _setting("HANDOFF_ALERTS_REFIRE_NOTE_SECONDS", default=900, ge=0)
    alerts_storm_update_seconds: int = _setting("HANDOFF_ALERTS_STORM_UPDATE_SECONDS", default=60, ge=0)
    # Shared memory (writes to GitHub, PagerDuty, ServiceNow, Jira); see docs/shared-memory.md.
    shared_memory_retry_base_seconds: float = _setting(
        "HANDOFF_SHARED_MEMORY_RETRY_BASE_SECONDS", default=5.0, ge=0
    )
    shared_memory_retry_max_seconds: float = _setting(
        "HANDOFF_SHARED_MEMORY_RETRY_MAX_SECONDS", default=120.0, ge=0
    )
    shared_memory_max_age_seconds: float = _setting(
        "HANDOFF_SHARED_MEMORY_MAX_AGE_SECONDS", default=24 * 3600.0, gt=0
    )
    shared_memory_github_spacing_seconds: float = _setting(
        "HANDOFF_SHARED_MEMORY_GITHUB_SPACING_SECONDS", default=1.0, ge=0
    )
    shared_memory_github_hourly_limit: int = _setting(
        "HANDOFF_SHARED_MEMORY_GITHUB_HOURLY_LIMIT", default=500, ge=1
    )
    shared_memory_pagerduty_note_limit: int = _setting(
        "HANDOFF_SHARED_MEMORY_PAGERDUTY_NOTE_LIMIT", default=1990, ge=1, le=2000
    )
    shared_memory_timeout_seconds: float = _setting(
        "HANDOFF_SHARED_MEMORY_TIMEOUT_SECONDS", default=15.0, gt=0
    )
    # Humans in the loop without webhooks: each active investigation's records on backends that poll
    # (inbound "poll" or "both") are read at most this often; the poll timer's schedule follows.
    human_poll_seconds: int = _setting("HANDOFF_HUMAN_POLL_SECONDS", default=60, ge=1, le=86400)
    # Egress policy of every outbound call (docs/security.md): networks that may be reached although
    # private (comma-separated CIDRs, for agents behind private endpoints) and the answer size cap.
    egress_allowed_networks: str | None = _setting("HANDOFF_EGRESS_ALLOWED_NETWORKS", default=None)
    max_response_bytes: int = _setting("HANDOFF_MAX_RESPONSE_BYTES", default=4 * 1024 * 1024, ge=1024)
    # Telemetry (docs/operations.md): traces, metrics and logs go to Application Insights when its
    # connection string is set, over OTLP/HTTP when an OTLP endpoint is set; neither: nothing is exported
    # and OpenTelemetry is not even imported.
    applicationinsights_connection_string: str | None = _setting(
        "APPLICATIONINSIGHTS_CONNECTION_STRING", default=None, repr=False
    )
    applicationinsights_authentication_string: str | None = _setting(
        "APPLICATIONINSIGHTS_AUTHENTICATION_STRING", default=None, repr=False
    )
    otlp_endpoint: str | None = _setting("OTEL_EXPORTER_OTLP_ENDPOINT", default=None)
    otel_service_name: str = _setting("OTEL_SERVICE_NAME", default="handoff-broker", min_length=1)
    # Whether the app's own log records go out with the traces: auto = always over OTLP, and to Azure
    # Monitor only outside Azure (in Azure the Functions host sends every log line there already).
    telemetry_logs: Literal["auto", "on", "off"] = _setting("HANDOFF_TELEMETRY_LOGS", default="auto")
    # Count every Table and Queue request by kind, in-process (bench/); off in production.
    count_storage_transactions: bool = _setting("HANDOFF_COUNT_STORAGE_TRANSACTIONS", default=False)

    @field_validator("egress_allowed_networks")
    @classmethod
    def _networks(cls, value: str | None) -> str | None:
        parse_networks(value)
        return value

    @field_validator("sweep_schedule")
    @classmethod
    def _schedule(cls, value: str) -> str:
        if len(value.split()) != 6:
            raise ValueError(f"must be an NCRONTAB expression of six fields (seconds first), got {value!r}")
        return value

    @field_validator("arm_endpoint", "alerts_authority", "portal_url")
    @classmethod
    def _service_url(cls, value: str) -> str:
        parts = urlsplit(value)
        host = (parts.hostname or "").lower()
        if parts.scheme == "https" and host and not parts.query and not parts.fragment:
            return value
        if parts.scheme == "http" and is_loopback(host):
            return value  # a local fake (tests, make run): set explicitly, never from a request
        raise ValueError(f"must be an https URL (http only on a loopback host), got {value!r}")

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        """Read every field from ``environ`` (default ``os.environ``); unset variables keep defaults."""
        environ = os.environ if environ is None else environ
        values = {}
        for name, field in cls.model_fields.items():
            env = _env_of(field).name
            if env in environ and environ[env] != "":
                values[name] = environ[env]
        return cls.model_validate(values)

    @classmethod
    def env_names(cls, *, deploy: bool | None = None, platform: bool | None = None) -> list[str]:
        """Environment variable names of the settings, optionally filtered by their flags."""
        names = []
        for field in cls.model_fields.values():
            env = _env_of(field)
            if deploy is not None and env.deploy != deploy:
                continue
            if platform is not None and env.platform != platform:
                continue
            names.append(env.name)
        return names

    @property
    def resolved_config_path(self) -> Path:
        """``HANDOFF_CONFIG`` as an absolute path (relative paths are from the app root)."""
        path = Path(self.config_path)
        return path if path.is_absolute() else APP_ROOT / path

    @property
    def delivery_lease_seconds(self) -> float:
        """The per-handoff lease: ``HANDOFF_LEASE_SECONDS``, but at least two HTTP timeouts, so a call a
        worker started under its lease has ended before another worker can take the handoff over."""
        return max(float(self.lease_seconds), 2 * self.http_timeout_seconds)

    @property
    def human_poll_schedule(self) -> str:
        """NCRONTAB schedule of the human-entry poll timer (a tick of about a quarter interval)."""
        return poll_schedule(self.human_poll_seconds)

    @property
    def max_dequeue_count(self) -> int:
        """host.json ``maxDequeueCount``: after this many failed runs the host poisons a message."""
        return int(host_queue_options().get("maxDequeueCount", 5))

    @property
    def alerts_audiences(self) -> tuple[str, ...]:
        """Accepted ``aud`` values of secure-webhook tokens (comma-separated: app ID URI and client ID)."""
        return tuple(part.strip() for part in (self.alerts_audience or "").split(",") if part.strip())

    @property
    def secure_webhook(self) -> bool:
        """Whether /api/alerts validates secure-webhook tokens (an audience and a tenant are set)."""
        return bool(self.alerts_audiences and self.alerts_tenant_id)

    @property
    def base_url(self) -> str:
        """Public base URL of the broker, used in links written into threads."""
        if self.public_base_url:
            return self.public_base_url.rstrip("/")
        if self.website_hostname:
            return f"https://{self.website_hostname}"
        return "http://127.0.0.1:7071"


@lru_cache(maxsize=1)
def host_queue_options() -> dict[str, Any]:
    """The ``extensions.queues`` section of host.json (the Functions host's queue semantics)."""
    try:
        data = json.loads((APP_ROOT / "host.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return dict(data.get("extensions", {}).get("queues", {}))


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process-wide settings, read once."""
    return Settings.from_env()
