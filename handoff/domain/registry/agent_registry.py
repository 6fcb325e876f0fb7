"""The registry as the app uses it: read from the JSON file named by ``HANDOFF_CONFIG``, validated once
at start-up (every error names the bad field, ``agents[1].endpoint: ...``), then looked up."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from handoff.domain.registry.agents import AgentConfig
from handoff.domain.registry.alert_routes import AlertRoute, AlertStorm
from handoff.domain.registry.registry_file import Operators, RegistryFile
from handoff.domain.shared_memory.config import BACKEND_TYPES, SharedMemoryConfig


class ConfigError(ValueError):
    """The registry file is missing or invalid; the message names the file and the bad field."""


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
