"""Shared fixtures: a real Azurite, the simulated agents and token endpoint, and the running broker."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest

from devserver.azurite import Azurite, start_azurite
from devserver.fakes.stack import FakeStack, start_fake_stack
from tests.support.broker import BrokerProcess
from tests.support.vendors import SHARED_MEMORY_ENV, VendorFakes, shared_memory_config, start_vendor_fakes


@pytest.fixture(scope="session")
def azurite() -> Iterator[Azurite]:
    """A real Azurite on free ports, started once per test session."""
    instance = start_azurite()
    yield instance
    instance.stop()


@pytest.fixture(scope="session")
def fakes() -> Iterator[FakeStack]:
    """Token endpoint, ARM and simulated SRE Agents ops, checkout and payments (real HTTP servers)."""
    # payments accepts only the SRE Agent app-ID audience, as some deployments do, so the broker's
    # 401 → fallback-scope path runs for real.
    stack = start_fake_stack(
        ("ops", "checkout", "payments", "inventory"),
        agent_options={"payments": {"accepted_audiences": ("59f0a04a-b322-4310-adc9-39ac41e9631e",)}},
    )
    yield stack
    stack.stop()


@pytest.fixture(scope="session")
def registry_config(fakes: FakeStack) -> dict:
    """The registry the broker runs with: ops and checkout with endpoints, payments looked up in ARM."""
    config = fakes.registry_config()
    for agent in config["agents"]:
        agent["description"] = f"{agent['name']} test agent"
        if agent["name"] == "payments":
            del agent["endpoint"]
    return config


# ---------------------------------------------------------------- shared memory
# The inventory agent writes shared memory to simulated GitHub, PagerDuty, ServiceNow and Jira.


@pytest.fixture(scope="session")
def vendors() -> Iterator[VendorFakes]:
    """Simulated GitHub, PagerDuty, ServiceNow and Jira (real HTTP servers checking vendor schemas)."""
    started = start_vendor_fakes()
    yield started
    started.stop()


@pytest.fixture(scope="session")
def shared_memory_registry(registry_config: dict, vendors: VendorFakes) -> dict:
    """``registry_config`` plus the shared-memory backends, used by the inventory agent."""
    return shared_memory_config(registry_config, vendors)


@pytest.fixture(scope="session")
def broker(
    azurite: Azurite, fakes: FakeStack, shared_memory_registry: dict, tmp_path_factory
) -> Iterator[BrokerProcess]:
    """The broker under the local host, as a subprocess, wired to Azurite and the fakes."""
    workdir = tmp_path_factory.mktemp("broker")
    config_path = workdir / "handoff.config.json"
    config_path.write_text(json.dumps(shared_memory_registry))
    env = {
        **fakes.env(),
        "HANDOFF_CONFIG": str(config_path),
        "HANDOFF_STORAGE": azurite.connection_string,
        "AzureWebJobsStorage": azurite.connection_string,
        "HANDOFF_ARM_ENDPOINT": fakes.arm_url,
        "HANDOFF_RETRY_BASE_SECONDS": "0.2",
        "HANDOFF_RETRY_MAX_SECONDS": "2",
        "HANDOFF_MAX_DELIVERY_ATTEMPTS": "4",
        **SHARED_MEMORY_ENV,
    }
    process = BrokerProcess(env, workdir / "host.log")
    try:
        process.wait_healthy()
        yield process
    finally:
        process.stop()


@pytest.fixture
def clean_fakes(fakes: FakeStack) -> Iterator[FakeStack]:
    """The fakes with no faults left over from another test."""
    for agent in fakes.agents.values():
        agent.clear_faults()
    yield fakes
    for agent in fakes.agents.values():
        agent.clear_faults()
