"""The agent registry: which SRE Agents (and other targets) the broker knows, read from a JSON file.

The file is named by the ``HANDOFF_CONFIG`` setting and validated once at start-up; every error names
the bad field (``agents[1].endpoint: ...``).

The modules: :mod:`.agents` (registered agents, their delivery and URL rules), :mod:`.alert_routes`
(alert routing rules and storm limits), :mod:`.registry_file` (the whole file and its cross-entry rules)
and :mod:`.agent_registry` (:class:`Registry`: loading, error messages, lookups).
"""

from handoff.domain.registry.agent_registry import ConfigError, Registry
from handoff.domain.registry.agents import (
    DEFAULT_TOKEN_SCOPE,
    SRE_AGENT_APP_SCOPE,
    SYSTEM_SOURCES,
    A2ADelivery,
    AgentConfig,
    Delivery,
    HttpTriggerDelivery,
    ThreadDelivery,
    check_a2a_url,
    check_agent_url,
    may_hand_off,
)
from handoff.domain.registry.alert_routes import AlertMatch, AlertRoute, AlertStorm, AlertStormOverride
from handoff.domain.registry.config_model import AGENT_NAME_PATTERN, SettingName
from handoff.domain.registry.registry_file import Operators, RegistryFile

__all__ = [
    "AGENT_NAME_PATTERN",
    "DEFAULT_TOKEN_SCOPE",
    "SRE_AGENT_APP_SCOPE",
    "SYSTEM_SOURCES",
    "A2ADelivery",
    "AgentConfig",
    "AlertMatch",
    "AlertRoute",
    "AlertStorm",
    "AlertStormOverride",
    "ConfigError",
    "Delivery",
    "HttpTriggerDelivery",
    "Operators",
    "Registry",
    "RegistryFile",
    "SettingName",
    "ThreadDelivery",
    "check_a2a_url",
    "check_agent_url",
    "may_hand_off",
]
