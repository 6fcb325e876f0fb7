"""Alert routing rules: which agent an Azure Monitor alert goes to, and the alert storm limits."""

from __future__ import annotations

import re
from typing import Annotated

from pydantic import Field, field_validator

from handoff.domain.models import Intent, Severity
from handoff.domain.registry.config_model import AGENT_NAME_PATTERN, ConfigModel

_RESOURCE_TYPE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9.]*(/[A-Za-z0-9][A-Za-z0-9_.-]*)+$")


class AlertStorm(ConfigModel):
    """Alert storm limits: more than ``threshold`` new handoffs to one target within ``windowSeconds``
    and further distinct alerts join one storm handoff."""

    threshold: int = Field(default=5, ge=1, le=10_000)
    window_seconds: int = Field(default=60, ge=1, le=86_400)


class AlertStormOverride(ConfigModel):
    """A route's override of the file-wide ``alertStorm`` (unset fields keep the file-wide value)."""

    threshold: int | None = Field(default=None, ge=1, le=10_000)
    window_seconds: int | None = Field(default=None, ge=1, le=86_400)


class AlertMatch(ConfigModel):
    """Conditions of an alert route; every key given must hold (AND). Empty: matches every alert."""

    resource_id_prefix: str | None = Field(default=None, min_length=2, max_length=1024)
    resource_type: str | None = Field(default=None, max_length=300)
    alert_rule: str | None = Field(default=None, min_length=1, max_length=260)
    severity: tuple[Severity, ...] | None = Field(default=None, min_length=1)
    signal_type: str | None = Field(default=None, min_length=1, max_length=64)
    monitoring_service: str | None = Field(default=None, min_length=1, max_length=128)
    custom_properties: dict[str, str] | None = Field(default=None, min_length=1)

    @field_validator("resource_id_prefix")
    @classmethod
    def _prefix(cls, value: str | None) -> str | None:
        if value is not None and not re.match(r"^/subscriptions/[^/]+(/[^/]+)*/?$", value, re.IGNORECASE):
            raise ValueError(
                "must be the start of an Azure resource ID, such as /subscriptions/<id>/resourceGroups/<rg>"
            )
        return value

    @field_validator("resource_type")
    @classmethod
    def _type(cls, value: str | None) -> str | None:
        if value is not None and not _RESOURCE_TYPE.match(value):
            raise ValueError(
                "must be a resource type such as Microsoft.Web/sites or Microsoft.Web/sites/slots"
            )
        return value


class AlertRoute(ConfigModel):
    """One routing rule for Azure Monitor alerts: the first route whose ``match`` holds wins."""

    name: Annotated[str, Field(pattern=AGENT_NAME_PATTERN)]
    target: str = Field(min_length=1)
    intent: Intent = "investigate"
    match: AlertMatch = Field(default_factory=AlertMatch)
    alert_storm: AlertStormOverride | None = None
    shared_memory: tuple[Annotated[str, Field(min_length=1, max_length=128)], ...] = Field(
        default=(), description="Shared-memory destinations the alert's findings are written to."
    )

    def storm(self, defaults: AlertStorm) -> AlertStorm:
        """The storm limits for this route: its override on top of the file-wide values."""
        override = self.alert_storm
        if override is None:
            return defaults
        return AlertStorm(
            threshold=override.threshold or defaults.threshold,
            window_seconds=override.window_seconds or defaults.window_seconds,
        )
