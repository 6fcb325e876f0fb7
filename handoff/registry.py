"""The agent registry: which SRE Agents (and other targets) the broker knows, read from a JSON file.

The file is named by the ``HANDOFF_CONFIG`` setting and validated once at start-up; every error names
the bad field (``agents[1].endpoint: ...``).
"""

from __future__ import annotations

import ipaddress
import json
import re
from pathlib import Path
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator
from pydantic.alias_generators import to_camel

from handoff.shared_memory.config import BACKEND_TYPES, SharedMemoryConfig, unknown_backends

DEFAULT_TOKEN_SCOPE = "https://azuresre.dev/.default"  # noqa: S105 - a scope, not a secret
# The SRE Agent first-party app ID. Microsoft's own MCP client and the HTTP trigger docs use it as the
# audience while the API reference documents https://azuresre.dev; see docs/architecture.md.
SRE_AGENT_APP_SCOPE = "59f0a04a-b322-4310-adc9-39ac41e9631e/.default"
AGENT_NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$"
_AGENT_ID = re.compile(
    r"^/subscriptions/[^/]+/resourceGroups/[^/]+/providers/Microsoft\.App/agents/[^/]+$", re.IGNORECASE
)


class ConfigError(ValueError):
    """The registry file is missing or invalid; the message names the file and the bad field."""


class _ConfigModel(BaseModel):
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="forbid", frozen=True)


class ThreadDelivery(_ConfigModel):
    """Deliver by creating a thread: ``POST {endpoint}/api/v1/threads``."""

    mode: Literal["thread"] = "thread"


class HttpTriggerDelivery(_ConfigModel):
    """Deliver by calling one of the agent's HTTP triggers with the structured payload."""

    mode: Literal["httpTrigger"]
    trigger_url: str


Delivery = Annotated[ThreadDelivery | HttpTriggerDelivery, Field(discriminator="mode")]


class AgentConfig(_ConfigModel):
    """One registered agent."""

    name: Annotated[str, Field(pattern=AGENT_NAME_PATTERN)]
    resource_id: str
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
    shared_memory: tuple[str, ...] = Field(
        default=(),
        description="Names of shared-memory backends written for every handoff this agent receives.",
    )

    @field_validator("resource_id")
    @classmethod
    def _agent_resource_id(cls, value: str) -> str:
        if not _AGENT_ID.match(value):
            raise ValueError(
                "must be a Microsoft.App/agents resource ID: "
                "/subscriptions/<id>/resourceGroups/<rg>/providers/Microsoft.App/agents/<name>"
            )
        return value

    @model_validator(mode="after")
    def _safe_urls(self) -> AgentConfig:
        if self.endpoint is not None:
            check_agent_url(self.endpoint, self.allow_insecure_local, "endpoint")
        if isinstance(self.delivery, HttpTriggerDelivery):
            check_agent_url(self.delivery.trigger_url, self.allow_insecure_local, "delivery.triggerUrl")
        return self

    @property
    def resource_name(self) -> str:
        """Last segment of the resource ID: what Microsoft's client sends as ``startMessage.agent``."""
        return self.resource_id.rstrip("/").rsplit("/", 1)[-1]

    @property
    def label(self) -> str:
        """How people see the agent in messages."""
        return self.display_name or self.name


class RegistryFile(_ConfigModel):
    """The whole configuration file."""

    agents: list[AgentConfig] = Field(min_length=1)
    shared_memory: SharedMemoryConfig | None = None

    @model_validator(mode="after")
    def _known_backends(self) -> RegistryFile:
        for index, agent in enumerate(self.agents):
            unknown = unknown_backends(agent.shared_memory, self.shared_memory)
            if unknown:
                raise ValueError(
                    f"agents[{index}].sharedMemory names unknown backend(s) {', '.join(unknown)}; "
                    "define them under sharedMemory.backends"
                )
        return self

    @model_validator(mode="after")
    def _unique(self) -> RegistryFile:
        seen: dict[str, int] = {}
        for index, agent in enumerate(self.agents):
            for key in (agent.name.lower(), agent.resource_id.lower()):
                if key in seen:
                    raise ValueError(f"agents[{index}] repeats agents[{seen[key]}] ({key})")
                seen[key] = index
        return self


def check_agent_url(url: str, allow_insecure_local: bool, field: str) -> None:
    """Refuse URLs the broker must never send a managed-identity token to (SSRF guard).

    Allowed: ``https`` with a host under ``.azuresre.ai``; or, only when the agent sets
    ``allowInsecureLocal``, any scheme on a loopback host (local runs and tests).
    """
    parts = urlsplit(url)
    host = (parts.hostname or "").lower()
    if parts.scheme == "https" and host.endswith(".azuresre.ai") and host != ".azuresre.ai":
        return
    if allow_insecure_local and parts.scheme in ("http", "https") and _is_loopback(host):
        return
    hint = " (set allowInsecureLocal only for loopback test agents)" if _is_loopback(host) else ""
    raise ValueError(f"{field} must be https on a host ending in .azuresre.ai{hint}, got {url!r}")


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class Registry:
    """Registered agents, looked up by name or by resource ID (case-insensitive, as ARM compares)."""

    def __init__(self, agents: list[AgentConfig], shared_memory: SharedMemoryConfig | None = None) -> None:
        self.agents = list(agents)
        self.shared_memory = shared_memory or SharedMemoryConfig()
        self._by_key: dict[str, AgentConfig] = {}
        for agent in self.agents:
            self._by_key[agent.name.lower()] = agent
            self._by_key[agent.resource_id.lower().rstrip("/")] = agent

    def find(self, ref: str) -> AgentConfig | None:
        """The agent registered under ``ref`` (a name or a resource ID), or None."""
        return self._by_key.get(ref.strip().lower().rstrip("/"))

    def by_name(self, name: str) -> AgentConfig:
        """The agent with this registered name (KeyError when unknown)."""
        agent = self.find(name)
        if agent is None:
            raise KeyError(name)
        return agent

    @classmethod
    def from_data(cls, data: Any, source: str = "configuration") -> Registry:
        """Validate parsed JSON; errors name the bad field."""
        try:
            parsed = RegistryFile.model_validate(data)
        except ValidationError as exc:
            raise ConfigError(f"{source} is invalid:\n{_describe(exc)}") from None
        return cls(parsed.agents, parsed.shared_memory)

    @classmethod
    def load(cls, path: Path) -> Registry:
        """Read and validate the registry file."""
        try:
            text = path.read_text(encoding="utf-8")
        except FileNotFoundError:
            raise ConfigError(
                f"agent registry {path} does not exist; set HANDOFF_CONFIG or copy "
                "handoff.config.sample.json to handoff.config.json"
            ) from None
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise ConfigError(
                f"{path} is not valid JSON: line {exc.lineno} column {exc.colno}: {exc.msg}"
            ) from None
        return cls.from_data(data, str(path))


def _describe(exc: ValidationError) -> str:
    lines = []
    for item in exc.errors(include_url=False):
        path = ""
        for part in item["loc"]:
            if isinstance(part, int):
                path += f"[{part}]"
            elif part in ("thread", "httpTrigger", *BACKEND_TYPES):
                continue  # discriminated-union tag, not a field of the file
            else:
                path += f".{part}" if path else str(part)
        message = str(item["msg"]).removeprefix("Value error, ")
        lines.append(f"  {path or '(root)'}: {message}")
    return "\n".join(lines)
