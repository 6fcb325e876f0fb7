"""The two agents the kit plays: simulated Azure SRE Agents (the repository's own fake, a real HTTP
server with the data-plane API) on loopback ports the broker's registry names.

The broker reaches them as it reaches any SRE Agent: with a bearer token from its managed identity.
The fakes accept tokens signed with the local token endpoint's secret (``FAKE_IDENTITY_SECRET``), so the
broker under test must run with that token endpoint (``make run`` and the test suite do).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from devserver.fakes.sre_agent import FakeSreAgent

SOURCE = "conformance-source"
TARGET = "conformance-target"
_RESOURCE = (
    "/subscriptions/00000000-0000-0000-0000-000000000000/resourceGroups/conformance"
    "/providers/Microsoft.App/agents/{}"
)


@dataclass
class SimulatedAgents:
    """The source and target agents: names, ports (0: any free one) and, once started, the fakes."""

    source_name: str = SOURCE
    target_name: str = TARGET
    source_port: int = 0
    target_port: int = 0
    secret: str | None = None
    fakes: dict[str, FakeSreAgent] = field(default_factory=dict)

    def start(self) -> SimulatedAgents:
        """Serve both agents (idempotent)."""
        from devserver.fakes.sre_agent import FakeSreAgent  # loaded when a run starts, not by the plugin

        if not self.fakes:
            for name, port in ((self.source_name, self.source_port), (self.target_name, self.target_port)):
                agent = FakeSreAgent(name, _RESOURCE.format(name), secret=self.secret)
                self.fakes[name] = agent.start(port=port)
        return self

    def stop(self) -> None:
        """Stop both agents."""
        for agent in self.fakes.values():
            agent.stop()
        self.fakes.clear()

    @staticmethod
    def resource_id(name: str) -> str:
        """The resource ID the kit gives its simulated agent ``name`` (in no real subscription)."""
        return _RESOURCE.format(name)

    @property
    def source(self) -> FakeSreAgent:
        return self.fakes[self.source_name]

    @property
    def target(self) -> FakeSreAgent:
        return self.fakes[self.target_name]

    def registry_entries(self) -> list[dict[str, Any]]:
        """What the broker's ``handoff.config.json`` must hold for the two agents (``agents`` entries)."""
        entries = []
        for name, port in ((self.source_name, self.source_port), (self.target_name, self.target_port)):
            endpoint = self.fakes[name].endpoint if name in self.fakes else f"http://127.0.0.1:{port}"
            entries.append(
                {
                    "name": name,
                    "description": "Simulated SRE Agent of the handoff conformance kit",
                    "resourceId": _RESOURCE.format(name),
                    "endpoint": endpoint,
                    "delivery": {"mode": "thread"},
                    "allowInsecureLocal": True,
                }
            )
        return entries

    def threads_with(self, name: str, needle: str) -> list[dict[str, Any]]:
        """Threads of agent ``name`` whose start message holds ``needle``."""
        return [t for t in self.fakes[name].threads() if needle in t["startMessage"]["text"]]

    def messages_with(self, name: str, thread_id: str, needle: str) -> list[dict[str, Any]]:
        """Messages of a thread of agent ``name`` that hold ``needle``."""
        return [m for m in self.fakes[name].messages(thread_id) if needle in m["text"]]

    def wait(self, check: Any, timeout: float, interval: float = 0.1) -> Any:
        """``check()`` once it is truthy, or its last value after ``timeout`` seconds."""
        deadline = time.monotonic() + timeout
        while True:
            value = check()
            if value or time.monotonic() > deadline:
                return value
            time.sleep(interval)
