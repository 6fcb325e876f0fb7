"""Registered agents: how each is reached (thread, HTTP trigger, A2A), who may act as it, and the URL
rules that keep the broker's tokens on Azure SRE Agent hosts."""

from __future__ import annotations

import fnmatch
import re
from typing import Annotated, Literal
from urllib.parse import urlsplit

from pydantic import Field, field_validator, model_validator

from handoff.domain.models import AutoHandback
from handoff.domain.net import is_loopback
from handoff.domain.registry.config_model import AGENT_NAME_PATTERN, ConfigModel, SettingName

DEFAULT_TOKEN_SCOPE = "https://azuresre.dev/.default"  # noqa: S105 - a scope, not a secret
# The SRE Agent first-party app ID. Microsoft's own MCP client and the HTTP trigger docs use it as the
# audience while the API reference documents https://azuresre.dev; see docs/architecture.md.
SRE_AGENT_APP_SCOPE = "59f0a04a-b322-4310-adc9-39ac41e9631e/.default"
_AGENT_ID = re.compile(
    r"^/subscriptions/[^/]+/resourceGroups/[^/]+/providers/Microsoft\.App/agents/[^/]+$", re.IGNORECASE
)
# Sources of handoffs that are not agents: the broker itself starts these handoffs (there is no source
# thread, so no cross-link, and hand-backs are kept but not posted anywhere). Name -> label in messages.
SYSTEM_SOURCES: dict[str, str] = {"azure-monitor": "Azure Monitor"}


class ThreadDelivery(ConfigModel):
    """Deliver by creating a thread: ``POST {endpoint}/api/v1/threads``."""

    mode: Literal["thread"] = "thread"


class HttpTriggerDelivery(ConfigModel):
    """Deliver by calling one of the agent's HTTP triggers with the structured payload."""

    mode: Literal["httpTrigger"]
    trigger_url: str


class A2ADelivery(ConfigModel):
    """Deliver to an A2A (v1.0) agent: ``SendMessage`` to its JSON-RPC endpoint ``url``.

    The peer's own token, if it wants one, comes either from an app setting named by
    ``bearerTokenSetting`` (the setting holds the token; the registry never does) or from the
    broker's managed identity for ``tokenScope``. Neither: no ``Authorization`` header.
    """

    mode: Literal["a2a"]
    url: str
    bearer_token_setting: SettingName | None = None
    token_scope: str | None = Field(default=None, min_length=1, max_length=512)

    @model_validator(mode="after")
    def _one_auth(self) -> A2ADelivery:
        if self.bearer_token_setting and self.token_scope:
            raise ValueError("set bearerTokenSetting or tokenScope, not both")
        return self


Delivery = Annotated[ThreadDelivery | HttpTriggerDelivery | A2ADelivery, Field(discriminator="mode")]


class AgentConfig(ConfigModel):
    """One registered agent."""

    name: Annotated[str, Field(pattern=AGENT_NAME_PATTERN)]
    resource_id: str | None = Field(default=None, description="Required except for A2A agents.")
    endpoint: str | None = None
    delivery: Delivery = Field(default_factory=ThreadDelivery)
    description: str | None = Field(default=None, max_length=500)
    allow_insecure_local: bool = False
    token_scope: str = DEFAULT_TOKEN_SCOPE
    fallback_token_scope: str | None = SRE_AGENT_APP_SCOPE
    callers: tuple[str, ...] = Field(
        default=(),
        description="Entra object or application IDs allowed to act as this agent when calling the broker.",
    )
    display_name: str | None = Field(default=None, max_length=100)
    auto_handback: AutoHandback | None = Field(
        default=None, description="Hand B's final reply back when B does not (SRE Agent targets only)."
    )
    shared_memory: tuple[str, ...] = Field(
        default=(),
        description="Names of shared-memory backends written for every handoff this agent receives.",
    )
    key_setting: SettingName | None = Field(
        default=None,
        description="App setting holding this agent's own caller key (sent as X-Handoff-Agent-Key).",
    )
    may_hand_off_to: tuple[Annotated[str, Field(min_length=1, max_length=128)], ...] = Field(
        default=("*",),
        description="Agents this agent may hand off to: names or globs (fnmatch, case-insensitive).",
    )

    @field_validator("resource_id")
    @classmethod
    def _agent_resource_id(cls, value: str | None) -> str | None:
        if value is not None and not _AGENT_ID.match(value):
            raise ValueError(
                "must be a Microsoft.App/agents resource ID: "
                "/subscriptions/<id>/resourceGroups/<rg>/providers/Microsoft.App/agents/<name>"
            )
        return value

    @model_validator(mode="after")
    def _safe_urls(self) -> AgentConfig:
        if isinstance(self.delivery, A2ADelivery):
            check_a2a_url(self.delivery.url, self.allow_insecure_local, "delivery.url")
            if self.endpoint is not None:
                raise ValueError("endpoint: an A2A agent is reached at delivery.url; remove endpoint")
            if self.auto_handback is not None:
                raise ValueError("autoHandback: an A2A agent reports through its task; remove autoHandback")
            return self
        if self.resource_id is None:
            raise ValueError("resourceId: required (only A2A agents, delivery mode 'a2a', have none)")
        if self.endpoint is not None:
            check_agent_url(self.endpoint, self.allow_insecure_local, "endpoint")
        if isinstance(self.delivery, HttpTriggerDelivery):
            check_agent_url(self.delivery.trigger_url, self.allow_insecure_local, "delivery.triggerUrl")
        return self

    @property
    def resource_name(self) -> str:
        """Last segment of the resource ID: what Microsoft's client sends as ``startMessage.agent``."""
        return (self.resource_id or self.name).rstrip("/").rsplit("/", 1)[-1]

    @property
    def is_a2a(self) -> bool:
        """Whether the agent is reached over A2A rather than the SRE Agent API."""
        return isinstance(self.delivery, A2ADelivery)

    @property
    def label(self) -> str:
        """How people see the agent in messages."""
        return self.display_name or self.name


def may_hand_off(source: AgentConfig, target: AgentConfig) -> bool:
    """Whether ``source``'s ``mayHandOffTo`` names ``target`` (by name or glob, case-insensitive)."""
    return any(fnmatch.fnmatchcase(target.name.lower(), rule.lower()) for rule in source.may_hand_off_to)


def check_agent_url(url: str, allow_insecure_local: bool, field: str) -> None:
    """Refuse URLs the broker must never send a managed-identity token to (SSRF guard).

    Allowed: ``https`` with a host under ``.azuresre.ai``; or, only when the agent sets
    ``allowInsecureLocal``, any scheme on a loopback host (local runs and tests).
    """
    parts = urlsplit(url)
    host = (parts.hostname or "").lower()
    if parts.scheme == "https" and host.endswith(".azuresre.ai") and host != ".azuresre.ai":
        return
    if allow_insecure_local and parts.scheme in ("http", "https") and is_loopback(host):
        return
    hint = " (set allowInsecureLocal only for loopback test agents)" if is_loopback(host) else ""
    raise ValueError(f"{field} must be https on a host ending in .azuresre.ai{hint}, got {url!r}")


def check_a2a_url(url: str, allow_insecure_local: bool, field: str) -> None:
    """Refuse A2A peer URLs the broker must not call (SSRF guard for partner agents).

    Allowed: any ``https`` URL with a host; or, only when the agent sets ``allowInsecureLocal``, any
    scheme on a loopback host. The SRE Agent rule (:func:`check_agent_url`) is not relaxed by this.
    """
    parts = urlsplit(url)
    host = (parts.hostname or "").lower()
    if parts.scheme == "https" and host and not parts.username and not parts.password:
        return
    if allow_insecure_local and parts.scheme in ("http", "https") and is_loopback(host):
        return
    hint = " (set allowInsecureLocal only for loopback test agents)" if is_loopback(host) else ""
    raise ValueError(f"{field} must be an https URL without credentials{hint}, got {url!r}")
