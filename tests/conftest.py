"""Shared fixtures: a real Azurite, the simulated agents and token endpoint, and the running broker."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest

from devserver.azurite import Azurite, start_azurite
from devserver.fakes.a2a_peer import FakeA2APeer
from devserver.fakes.stack import FakeStack, start_fake_stack
from handoff_conformance import SimulatedAgents
from tests.support import fault_figures, figures
from tests.support.broker import BrokerProcess
from tests.support.vendors import SHARED_MEMORY_ENV, VendorFakes, shared_memory_config, start_vendor_fakes


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "attack(kind): a test that plays an attack of this kind (counted in the security figures)"
    )


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    figures.collect(items)


def pytest_sessionfinish(session: pytest.Session) -> None:
    # A test worker (pytest-xdist, `make test`) hands its figures to the process that prints them.
    output = getattr(session.config, "workeroutput", None)
    if output is not None:
        output["figures"] = figures.export()
        output["fault_figures"] = fault_figures.export()


@pytest.hookimpl(optionalhook=True)
def pytest_testnodedown(node, error) -> None:
    output = getattr(node, "workeroutput", None) or {}
    figures.merge(output.get("figures", {}))
    fault_figures.merge(output.get("fault_figures", []))


def pytest_terminal_summary(terminalreporter) -> None:
    figures.summary(terminalreporter)
    fault_figures.summary(terminalreporter)


@pytest.fixture(scope="session")
def security_figures() -> dict[str, int]:
    """Counts a test records for the security figures printed at the end of the run."""
    return figures.FIGURES


@pytest.fixture(scope="session")
def azurite() -> Iterator[Azurite]:
    """A real Azurite on free ports, started once per test session."""
    instance = start_azurite()
    yield instance
    instance.stop()


@pytest.fixture(scope="session")
def fakes() -> Iterator[FakeStack]:
    """Token endpoint, ARM and simulated SRE Agents ops, checkout, payments, inventory and triage (real
    HTTP servers)."""
    # payments accepts only the SRE Agent app-ID audience, as some deployments do, so the broker's
    # 401 → fallback-scope path runs for real.
    stack = start_fake_stack(
        ("ops", "checkout", "payments", "inventory", "triage"),
        agent_options={"payments": {"accepted_audiences": ("59f0a04a-b322-4310-adc9-39ac41e9631e",)}},
    )
    yield stack
    stack.stop()


@pytest.fixture(scope="session")
def conformance_agents() -> Iterator[SimulatedAgents]:
    """The conformance kit's simulated source and target agents (tests/e2e/test_conformance.py), started
    before the broker so that its registry can name them."""
    agents = SimulatedAgents().start()
    yield agents
    agents.stop()


@pytest.fixture(scope="session")
def registry_config(fakes: FakeStack, a2a_peer: FakeA2APeer, conformance_agents: SimulatedAgents) -> dict:
    """The registry the broker runs with: ops and checkout with endpoints, payments looked up in ARM,
    inventory reached through one of its HTTP triggers (the nested answer form), A2A partners, and the
    conformance kit's two agents."""
    config = fakes.registry_config()
    inventory = fakes.agents["inventory"]
    trigger = inventory.add_trigger(
        "handoff-intake",
        "Handoff {payload.handoffId} from {payload.sourceAgent} ({payload.severity}): {payload.title}",
        response_form="nested",
    )
    for agent in config["agents"]:
        agent["description"] = f"{agent['name']} test agent"
        if agent["name"] == "payments":
            del agent["endpoint"]
        if agent["name"] == "inventory":
            agent["delivery"] = {"mode": "httpTrigger", "triggerUrl": inventory.trigger_url(trigger)}
    config["agents"].extend(a2a_registry_entries(a2a_peer))
    config["agents"].extend(conformance_agents.registry_entries())
    # ---- Azure Monitor alert routes (tests/e2e/test_alerts*.py) ----
    # Tests pick a route with the customProperties key "testRoute". Samples and duplicates go to checkout
    # (storm threshold raised so every sample keeps its own handoff); storms go to ops alone.
    config.setdefault("alertRoutes", []).extend(
        [
            {
                "name": "alert-samples",
                "target": "checkout",
                "match": {"customProperties": {"testRoute": "samples"}},
                "alertStorm": {"threshold": 1000},
            },
            {
                "name": "alert-storm",
                "target": "ops",
                "intent": "mitigate",
                "match": {"customProperties": {"testRoute": "storm"}, "signalType": "Metric"},
                "alertStorm": {"windowSeconds": 600},
            },
        ]
    )
    config.setdefault("alertStorm", {"threshold": 5, "windowSeconds": 60})
    # ---- end of alert routes ----
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
    """``registry_config`` plus the shared-memory backends, used by the inventory agent and by an alert
    route (the Jira backend also writes when the alert resolves)."""
    config = shared_memory_config(registry_config, vendors)
    config["alertRoutes"].append(
        {
            "name": "alert-memory",
            "target": "checkout",
            "match": {"customProperties": {"testRoute": "memory"}},
            "alertStorm": {"threshold": 1000},
            "sharedMemory": ["jira"],
        }
    )
    return config


@pytest.fixture(scope="session")
def broker_env(
    azurite: Azurite, fakes: FakeStack, shared_memory_registry: dict, tmp_path_factory
) -> dict[str, str]:
    """App settings of the broker under test: Azurite, the fakes, the test registry (with the
    shared-memory backends), fast retries."""
    config_path = tmp_path_factory.mktemp("registry") / "handoff.config.json"
    config_path.write_text(json.dumps(shared_memory_registry))
    return {
        **fakes.env(),
        "HANDOFF_CONFIG": str(config_path),
        "HANDOFF_STORAGE": azurite.connection_string,
        "AzureWebJobsStorage": azurite.connection_string,
        "HANDOFF_ARM_ENDPOINT": fakes.arm_url,
        "HANDOFF_RETRY_BASE_SECONDS": "0.2",
        "HANDOFF_RETRY_MAX_SECONDS": "2",
        "HANDOFF_MAX_DELIVERY_ATTEMPTS": "4",
        # Tests poll quickly; the per-caller rate limit has its own tests (tests/e2e/test_authorization.py).
        "HANDOFF_RATE_LIMIT_PER_MINUTE": "0",
        **FOLLOW_UP_ENV,
        **SHARED_MEMORY_ENV,
    }


@pytest.fixture(scope="session")
def broker(broker_env: dict[str, str], tmp_path_factory) -> Iterator[BrokerProcess]:
    """The broker under the local host, as a subprocess, wired to Azurite and the fakes."""
    workdir = tmp_path_factory.mktemp("broker")
    with BrokerProcess.running(broker_env, workdir / "host.log") as process:
        yield process


@pytest.fixture
def clean_fakes(fakes: FakeStack) -> Iterator[FakeStack]:
    """The fakes with no faults left over from another test."""
    for agent in fakes.agents.values():
        agent.clear_faults()
    yield fakes
    for agent in fakes.agents.values():
        agent.clear_faults()


# ---------------------------------------------------------------- A2A partner and follow-up work

# Poll A2A tasks and watch SRE Agent threads every half second (the queue's delays are whole
# seconds, so in practice as soon as the host polls again).
FOLLOW_UP_ENV = {"HANDOFF_POLL_INTERVAL_SECONDS": "0.5"}


@pytest.fixture(scope="session")
def a2a_peer() -> Iterator[FakeA2APeer]:
    """A partner agent served by a2a-sdk's own server components (JSON-RPC, v1.0)."""
    peer = FakeA2APeer("partner").start()
    yield peer
    peer.stop()


def a2a_registry_entries(peer: FakeA2APeer) -> list[dict]:
    """Registry entries for the A2A partner: no resourceId, delivery over A2A on loopback."""
    return [
        {
            "name": "partner",
            "description": "Partner APM specialist reached over A2A",
            "delivery": {"mode": "a2a", "url": peer.rpc_url},
            "allowInsecureLocal": True,
        }
    ]


@pytest.fixture
def clean_peer(a2a_peer: FakeA2APeer) -> Iterator[FakeA2APeer]:
    """The A2A partner with its default script, no faults and no recorded executions."""
    a2a_peer.reset()
    yield a2a_peer
    a2a_peer.reset()
