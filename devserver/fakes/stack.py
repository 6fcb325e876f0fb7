"""Start the whole simulated environment: token endpoint, ARM, one SRE Agent per name and the portal.

``python -m devserver.fakes`` runs it in the foreground and prints the URLs and environment
variables; Ctrl-C stops it.
"""

from __future__ import annotations

import argparse
import json
import threading
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Self

from devserver.fakes.arm import FakeArm
from devserver.fakes.identity import FakeIdentity
from devserver.fakes.portal import FakePortal
from devserver.fakes.sre_agent import FakeSreAgent

DEFAULT_SUBSCRIPTION = "00000000-0000-0000-0000-000000000000"
DEFAULT_RESOURCE_GROUP = "rg-local"


def agent_resource_id(subscription: str, resource_group: str, name: str) -> str:
    """Resource id of the simulated agent called ``name`` (the resource is ``<name>-agent``)."""
    return (
        f"/subscriptions/{subscription}/resourceGroups/{resource_group}"
        f"/providers/Microsoft.App/agents/{name}-agent"
    )


@dataclass
class FakeStack:
    """A running token endpoint, ARM, SRE Agents and the portal stand-in that opens their threads."""

    identity: FakeIdentity
    arm: FakeArm
    agents: dict[str, FakeSreAgent] = field(default_factory=dict)
    portal: FakePortal = field(default_factory=FakePortal)

    @property
    def identity_endpoint(self) -> str:
        """Value for ``IDENTITY_ENDPOINT``."""
        return self.identity.endpoint

    @property
    def identity_header(self) -> str:
        """Value for ``IDENTITY_HEADER``."""
        return self.identity.header_secret

    @property
    def arm_url(self) -> str:
        """Base URL of the fake ARM (stands in for ``https://management.azure.com``)."""
        return self.arm.url

    @property
    def portal_url(self) -> str:
        """Value for ``HANDOFF_PORTAL_URL``: thread links then open the simulated agents' pages."""
        return self.portal.url

    def env(self) -> dict[str, str]:
        """``IDENTITY_ENDPOINT``, ``IDENTITY_HEADER`` and the token signing secret for other processes."""
        return self.identity.env()

    def registry_config(self, *, with_endpoints: bool = True) -> dict[str, Any]:
        """An agent registry for these agents (thread delivery, loopback allowed).

        With ``with_endpoints=False`` the endpoints are left out so they are read from the fake ARM.
        """
        agents = []
        for name, agent in self.agents.items():
            entry: dict[str, Any] = {"name": name, "resourceId": agent.resource_id}
            if with_endpoints:
                entry["endpoint"] = agent.endpoint
            entry["delivery"] = {"mode": "thread"}
            entry["allowInsecureLocal"] = True
            agents.append(entry)
        return {"agents": agents}

    def reset(self) -> None:
        """Clear threads, faults, recorded requests and token requests everywhere."""
        self.identity.reset()
        self.arm.reset()
        for agent in self.agents.values():
            agent.reset()

    def stop(self) -> None:
        """Stop every server."""
        for agent in self.agents.values():
            agent.stop()
        self.portal.stop()
        self.arm.stop()
        self.identity.stop()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def start_fake_stack(
    agent_names: Iterable[str] = ("ops", "checkout"),
    subscription: str = DEFAULT_SUBSCRIPTION,
    resource_group: str = DEFAULT_RESOURCE_GROUP,
    *,
    agent_options: Mapping[str, Mapping[str, Any]] | None = None,
    identity_options: Mapping[str, Any] | None = None,
    ports: Mapping[str, int] | None = None,
) -> FakeStack:
    """Start the token endpoint, ARM, one :class:`FakeSreAgent` per name and the portal, each on its own
    port.

    ``agent_options[name]`` passes keyword arguments to that agent (e.g. ``auto_reply=True``);
    ``ports`` may fix ports by key (``"identity"``, ``"arm"``, ``"portal"``, or an agent name); 0 or
    absent means a free port.
    """
    ports = ports or {}
    identity = FakeIdentity(**dict(identity_options or {}))
    arm = FakeArm()
    stack = FakeStack(identity=identity, arm=arm)
    try:
        identity.start(port=ports.get("identity", 0))
        arm.start(port=ports.get("arm", 0))
        stack.portal.start(port=ports.get("portal", 0))
        for name in agent_names:
            resource_id = agent_resource_id(subscription, resource_group, name)
            options = dict((agent_options or {}).get(name, {}))
            agent = FakeSreAgent(name, resource_id, **options)
            stack.agents[name] = agent
            agent.start(port=ports.get(name, 0))
            arm.register(resource_id, agent.endpoint)
            stack.portal.register(agent)
    except BaseException:
        stack.stop()
        raise
    return stack


def main(argv: list[str] | None = None) -> None:
    """Run the stack in the foreground until interrupted."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--agents", default="ops,checkout", help="comma-separated agent names")
    parser.add_argument("--auto-reply", action="store_true", help="simulate agent replies")
    args = parser.parse_args(argv)
    names = [name.strip() for name in args.agents.split(",") if name.strip()]
    stack = start_fake_stack(names, agent_options={name: {"auto_reply": args.auto_reply} for name in names})
    print("Token endpoint:", stack.identity_endpoint)
    print("ARM:", stack.arm_url)
    print("Portal (HANDOFF_PORTAL_URL):", stack.portal_url)
    for name, agent in stack.agents.items():
        print(f"Agent {name}: {agent.endpoint}  ({agent.resource_id})  threads: {agent.endpoint}/")
    print("Environment:")
    for key, value in stack.env().items():
        print(f"  export {key}={value}")
    print("Registry:", json.dumps(stack.registry_config()))
    try:
        threading.Event().wait()
    except KeyboardInterrupt:
        pass
    finally:
        stack.stop()
