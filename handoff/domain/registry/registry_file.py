"""The whole registry file: its sections, and the rules that span entries (unique names, known agents
and backends, one key setting each)."""

from __future__ import annotations

from pydantic import Field, model_validator

from handoff.domain.registry.agents import SYSTEM_SOURCES, AgentConfig
from handoff.domain.registry.alert_routes import AlertRoute, AlertStorm
from handoff.domain.registry.config_model import ConfigModel, SettingName
from handoff.domain.shared_memory.config import SharedMemoryConfig, unknown_backends


def _is_glob(rule: str) -> bool:
    return any(char in rule for char in "*?[")


class Operators(ConfigModel):
    """Who may read every handoff and steer the broker (replay, and later the operator tools)."""

    callers: tuple[str, ...] = Field(
        default=(), description="Entra object or application IDs of operators (App Service Authentication)."
    )
    key_setting: SettingName | None = Field(
        default=None, description="App setting holding the operators' key (sent as X-Handoff-Agent-Key)."
    )


class RegistryFile(ConfigModel):
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
