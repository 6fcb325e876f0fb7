"""The agent registry: which SRE Agents (and other targets) the broker knows, read from a JSON file.

The file is named by the ``HANDOFF_CONFIG`` setting and validated once at start-up; every error names
the bad field (``agents[1].endpoint: ...``).
"""

from __future__ import annotations

import fnmatch
import json
import re
from pathlib import Path
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator
from pydantic.alias_generators import to_camel

from handoff.domain.models import AutoHandback, Intent, Severity
from handoff.domain.net import is_loopback
from handoff.domain.shared_memory.config import BACKEND_TYPES, SharedMemoryConfig, unknown_backends

DEFAULT_TOKEN_SCOPE = "https://azuresre.dev/.default"  # noqa: S105 - a scope, not a secret
# The SRE Agent first-party app ID. Microsoft's own MCP client and the HTTP trigger docs use it as the
# audience while the API reference documents https://azuresre.dev; see docs/architecture.md.
SRE_AGENT_APP_SCOPE = "59f0a04a-b322-4310-adc9-39ac41e9631e/.default"
AGENT_NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$"
_AGENT_ID = re.compile(
    r"^/subscriptions/[^/]+/resourceGroups/[^/]+/providers/Microsoft\.App/agents/[^/]+$", re.IGNORECASE
)
# Sources of handoffs that are not agents: the broker itself starts these handoffs (there is no source
# thread, so no cross-link, and hand-backs are kept but not posted anywhere). Name -> label in messages.
SYSTEM_SOURCES: dict[str, str] = {"azure-monitor": "Azure Monitor"}


SettingName = Annotated[str, Field(pattern=r"^[A-Za-z_][A-Za-z0-9_]{0,127}$")]


def _is_glob(rule: str) -> bool:
    return any(char in rule for char in "*?[")


def may_hand_off(source: AgentConfig, target: AgentConfig) -> bool:
    """Whether ``source``'s ``mayHandOffTo`` names ``target`` (by name or glob, case-insensitive)."""
    return any(fnmatch.fnmatchcase(target.name.lower(), rule.lower()) for rule in source.may_hand_off_to)


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


class A2ADelivery(_ConfigModel):
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


class AgentConfig(_ConfigModel):
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


# ---------------------------------------------------------------- alert routing rules

_RESOURCE_TYPE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9.]*(/[A-Za-z0-9][A-Za-z0-9_.-]*)+$")


class AlertStorm(_ConfigModel):
    """Alert storm limits: more than ``threshold`` new handoffs to one target within ``windowSeconds``
    and further distinct alerts join one storm handoff."""

    threshold: int = Field(default=5, ge=1, le=10_000)
    window_seconds: int = Field(default=60, ge=1, le=86_400)


class AlertStormOverride(_ConfigModel):
    """A route's override of the file-wide ``alertStorm`` (unset fields keep the file-wide value)."""

    threshold: int | None = Field(default=None, ge=1, le=10_000)
    window_seconds: int | None = Field(default=None, ge=1, le=86_400)


class AlertMatch(_ConfigModel):
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


class AlertRoute(_ConfigModel):
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


class Operators(_ConfigModel):
    """Who may read every handoff and steer the broker (replay, and later the operator tools)."""

    callers: tuple[str, ...] = Field(
        default=(), description="Entra object or application IDs of operators (App Service Authentication)."
    )
    key_setting: SettingName | None = Field(
        default=None, description="App setting holding the operators' key (sent as X-Handoff-Agent-Key)."
    )


class RegistryFile(_ConfigModel):
    """The whole configuration file."""

    agents: list[AgentConfig] = Field(min_length=1)
    operators: Operators | None = None
    alert_routes: list[AlertRoute] = Field(default_factory=list)
    alert_storm: AlertStorm = Field(default_factory=AlertStorm)
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
        for index, route in enumerate(self.alert_routes):
            unknown = unknown_backends(route.shared_memory, self.shared_memory)
            if unknown:
                raise ValueError(
                    f"alertRoutes[{index}] (rule '{route.name}').sharedMemory names unknown backend(s) "
                    f"{', '.join(unknown)}; define them under sharedMemory.backends"
                )
        return self

    @model_validator(mode="after")
    def _unique(self) -> RegistryFile:
        seen: dict[str, int] = {}
        for index, agent in enumerate(self.agents):
            if agent.name.lower() in SYSTEM_SOURCES:
                raise ValueError(
                    f"agents[{index}].name '{agent.name}' is reserved for handoffs the broker starts"
                )
            for key in (agent.name.lower(), (agent.resource_id or "").lower()):
                if not key:
                    continue
                if key in seen:
                    raise ValueError(f"agents[{index}] repeats agents[{seen[key]}] ({key})")
                seen[key] = index
        return self

    @model_validator(mode="after")
    def _hand_off_rules(self) -> RegistryFile:
        names = {agent.name.lower() for agent in self.agents}
        for index, agent in enumerate(self.agents):
            for rule in agent.may_hand_off_to:
                if not _is_glob(rule) and rule.lower() not in names:
                    raise ValueError(
                        f"agents[{index}].mayHandOffTo: '{rule}' is neither a registered agent nor a glob"
                    )
        settings = [agent.key_setting for agent in self.agents if agent.key_setting]
        if self.operators and self.operators.key_setting:
            settings.append(self.operators.key_setting)
        if len({name.lower() for name in settings}) != len(settings):
            raise ValueError("keySetting: every agent (and the operators) needs its own key setting")
        return self

    @model_validator(mode="after")
    def _routes(self) -> RegistryFile:
        agents = {
            key.rstrip("/")
            for agent in self.agents
            for key in (agent.name.lower(), (agent.resource_id or "").lower())
            if key
        }
        names: dict[str, int] = {}
        for index, route in enumerate(self.alert_routes):
            label = f"alertRoutes[{index}] (rule '{route.name}')"
            if route.target.strip().lower().rstrip("/") not in agents:
                raise ValueError(f"{label}.target: '{route.target}' is not a registered agent")
            if route.name.lower() in names:
                raise ValueError(f"{label} repeats the name of alertRoutes[{names[route.name.lower()]}]")
            names[route.name.lower()] = index
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


class Registry:
    """Registered agents, looked up by name or by resource ID (case-insensitive, as ARM compares)."""

    def __init__(
        self,
        agents: list[AgentConfig],
        alert_routes: list[AlertRoute] | None = None,
        alert_storm: AlertStorm | None = None,
        shared_memory: SharedMemoryConfig | None = None,
        operators: Operators | None = None,
    ) -> None:
        self.agents = list(agents)
        self.operators = operators or Operators()
        self.alert_routes = list(alert_routes or [])
        self.alert_storm = alert_storm or AlertStorm()
        self.shared_memory = shared_memory or SharedMemoryConfig()
        self._by_key: dict[str, AgentConfig] = {}
        for agent in self.agents:
            self._by_key[agent.name.lower()] = agent
            if agent.resource_id:
                self._by_key[agent.resource_id.lower().rstrip("/")] = agent

    def find(self, ref: str) -> AgentConfig | None:
        """The agent registered under ``ref`` (a name or a resource ID), or None."""
        return self._by_key.get(ref.strip().lower().rstrip("/"))

    @property
    def names_callers(self) -> bool:
        """Whether the registry says who its callers are (agents' ``callers`` or ``keySetting``, or
        ``operators``). Until it does, every caller the platform let in may act as any agent."""
        return bool(
            self.operators.callers
            or self.operators.key_setting
            or any(agent.callers or agent.key_setting for agent in self.agents)
        )

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
            raise ConfigError(f"{source} is invalid:\n{_describe(exc, data)}") from None
        return cls(
            parsed.agents, parsed.alert_routes, parsed.alert_storm, parsed.shared_memory, parsed.operators
        )

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


def _describe(exc: ValidationError, data: object = None) -> str:
    lines = []
    for item in exc.errors(include_url=False):
        path = _rule_label(data, item["loc"])
        for part in item["loc"][2 if path else 0 :]:
            if isinstance(part, int):
                path += f"[{part}]"
            elif part in ("thread", "httpTrigger", "a2a", *BACKEND_TYPES):
                continue  # discriminated-union tag, not a field of the file
            else:
                path += f".{part}" if path else str(part)
        message = str(item["msg"]).removeprefix("Value error, ")
        lines.append(f"  {path or '(root)'}: {message}")
    return "\n".join(lines)


def _rule_label(data: Any, loc: tuple[int | str, ...]) -> str:
    """``alertRoutes[1] (rule 'shop')`` for errors inside an alert route, so the message names the rule.
    ``data`` is the file as read, of any shape: a lookup that does not fit it names no rule."""
    if len(loc) < 2 or loc[0] != "alertRoutes" or not isinstance(loc[1], int):
        return ""
    try:
        name = data["alertRoutes"][loc[1]]["name"]
    except (TypeError, KeyError, IndexError):
        name = None
    return f"alertRoutes[{loc[1]}] (rule '{name}')" if isinstance(name, str) else f"alertRoutes[{loc[1]}]"
