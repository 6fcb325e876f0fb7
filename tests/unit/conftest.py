"""A broker wired to the in-memory ports of ``tests/unit/memory``: no Azurite, no node, no network.

:class:`World` holds the ports and the use cases built on them, plus the few steps most tests take
(hand off, run the queue as the host would, hand back). Callers are the agents' own keys: the registry
names callers, so a caller is exactly the agents it may act as (``operatorKey`` is an operator).
"""

from __future__ import annotations

import json
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pytest

from handoff.domain.auth import SYSTEM, Caller
from handoff.domain.models import HandoffView
from handoff.domain.records import HandoffState
from handoff.domain.registry import Registry
from handoff.ports import LifecycleListener
from handoff.services.handbacks import HandBacks
from handoff.services.handoffs import Handoffs, build_handoffs
from handoff.services.intake import Intake
from handoff.services.policy import SweepReport
from handoff.services.queries import Queries
from handoff.services.sweeper import Sweeper
from handoff.services.worker import Worker
from handoff.settings import Settings
from tests.unit.memory.agents import MemoryAgentGateway
from tests.unit.memory.chains import MemoryChainStore
from tests.unit.memory.clock import Clock
from tests.unit.memory.history import MemoryHistoryIndex
from tests.unit.memory.listing import MemoryHandoffIndex
from tests.unit.memory.queue import MemoryDeliveryQueue
from tests.unit.memory.remote_agents import MemoryRemoteAgentGateway
from tests.unit.memory.store import MemoryHandoffStore

SUB = "/subscriptions/00000000-0000-0000-0000-000000000000"
RID = SUB + "/resourceGroups/rg/providers/Microsoft.App/agents/{}"
SITE = SUB + "/resourceGroups/shop/providers/Microsoft.Web/sites/checkout-api"
BASE_URL = "https://broker.example.com"


def _sre_agent(name: str, **extra: Any) -> dict[str, Any]:
    return {
        "name": name,
        "resourceId": RID.format(name),
        "endpoint": f"https://{name}.eastus2.azuresre.ai",
        "keySetting": f"KEY_{name.upper()}",
        **extra,
    }


REGISTRY_DATA: dict[str, Any] = {
    "agents": [
        _sre_agent("ops"),
        _sre_agent("checkout"),
        _sre_agent("payments"),
        _sre_agent("audit", mayHandOffTo=["ops"]),
        _sre_agent(
            "inventory",
            delivery={
                "mode": "httpTrigger",
                "triggerUrl": "https://inventory.eastus2.azuresre.ai/api/v1/httptriggers/trigger/intake",
            },
        ),
        _sre_agent("watched", autoHandback={"afterMinutes": 5, "maxWatchMinutes": 60}),
        {"name": "partner", "delivery": {"mode": "a2a", "url": "https://partner.example.com/a2a"}},
    ],
    "operators": {"keySetting": "KEY_OPERATORS"},
}

OPS = Caller("agentKey", name="ops")
CHECKOUT = Caller("agentKey", name="checkout")
PAYMENTS = Caller("agentKey", name="payments")
INVENTORY = Caller("agentKey", name="inventory")
WATCHED = Caller("agentKey", name="watched")
PARTNER = Caller("agentKey", name="partner")
OPERATOR = Caller("operatorKey")
BROKER = SYSTEM


def handoff_body(
    source_thread: str | None = None, *, source: str = "ops", target: str = "checkout", **extra: Any
) -> dict[str, Any]:
    """A complete handoff request."""
    body: dict[str, Any] = {
        "source": {"agent": source, **({"threadId": source_thread} if source_thread else {})},
        "target": {"agent": target},
        "intent": "investigate",
        "context": {
            "title": "Exception burst in checkout-api",
            "summary": "5xx rate rose from 0.1% to 7% at 02:10 UTC after deployment 2026.11.21.3",
            "severity": "Sev2",
            "resources": [SITE],
            "hypotheses": ["Connection pool exhaustion after deploy"],
        },
    }
    body.update(extra)
    return body


def run_during(
    main: Callable[..., Any], side: Callable[..., Any]
) -> tuple[Callable[..., Any], Callable[..., Any], list[bool]]:
    """Stand-ins for ``main`` and ``side`` that tell whether the two ran at once: each, once started,
    waits (2 s at most) for the other to have started, then runs, and the list records whether it saw
    it. Run at once, the list reads ``[True, True]``; done one after the other, in either order, the
    first one's wait times out and records ``False``."""
    main_started, side_started = threading.Event(), threading.Event()
    overlapped: list[bool] = []

    def main_waiting(*args: Any, **kwargs: Any) -> Any:
        main_started.set()
        overlapped.append(side_started.wait(timeout=2))
        return main(*args, **kwargs)

    def side_waiting(*args: Any, **kwargs: Any) -> Any:
        side_started.set()
        overlapped.append(main_started.wait(timeout=2))
        return side(*args, **kwargs)

    return main_waiting, side_waiting, overlapped


def seen_at_state_writes(world: World, owner: object, slowed: str, count: Callable[[], int]) -> list[int]:
    """Slow ``owner.slowed`` down (0.2 s) and record ``count()`` at each state write from then on: the
    last figure shows whether a side write was done before the write that ends the step."""
    side, update_state = getattr(owner, slowed), world.store.update_state
    seen: list[int] = []

    def slow(*args: Any, **kwargs: Any) -> Any:
        time.sleep(0.2)
        return side(*args, **kwargs)

    def update_counting(*args: Any, **kwargs: Any) -> Any:
        seen.append(count())
        return update_state(*args, **kwargs)

    setattr(owner, slowed, slow)
    world.store.update_state = update_counting  # type: ignore[method-assign]
    return seen


def handback_body(agent: str = "checkout", **extra: Any) -> dict[str, Any]:
    """A hand-back with a root cause and actions."""
    body: dict[str, Any] = {
        "agent": agent,
        "outcome": "mitigated",
        "summary": "Rolled back deployment 2026.11.21.3; 5xx back to baseline",
        "rootCause": "Connection pool size halved by the new config",
        "recommendedActions": ["Restore pool size to 200"],
    }
    body.update(extra)
    return body


def as_bytes(body: dict[str, Any]) -> bytes:
    return json.dumps(body).encode()


@dataclass
class World:
    """The in-memory ports and the broker's use cases on them."""

    settings: Settings
    registry: Registry
    clock: Clock
    store: MemoryHandoffStore
    queue: MemoryDeliveryQueue
    agents: MemoryAgentGateway
    remote: MemoryRemoteAgentGateway
    chains: MemoryChainStore
    history: MemoryHistoryIndex
    handoffs: Handoffs
    lifecycle: list[tuple[str, str, dict[str, Any]]] = field(default_factory=list)
    index: MemoryHandoffIndex = field(default_factory=MemoryHandoffIndex)

    # ---------------------------------------------------------------- the use cases

    @property
    def intake(self) -> Intake:
        return self.handoffs.intake

    @property
    def handbacks(self) -> HandBacks:
        return self.handoffs.handbacks

    @property
    def queries(self) -> Queries:
        return self.handoffs.queries

    @property
    def worker(self) -> Worker:
        return self.handoffs.worker

    @property
    def sweeper(self) -> Sweeper:
        return self.handoffs.sweeper

    # ---------------------------------------------------------------- steps

    def source_thread(self, agent: str = "ops") -> str:
        """A thread on the source agent, where the investigation started."""
        return self.agents.open_thread(agent)

    def accept(
        self, body: dict[str, Any] | None = None, caller: Caller = OPS, key: str | None = None
    ) -> tuple[HandoffView, bool]:
        """``POST /api/handoffs``."""
        return self.intake.accept(as_bytes(body or handoff_body()), caller, key)

    def hand_off(self, *, target: str = "checkout", source: str = "ops", **extra: Any) -> str:
        """A handoff from ``source``'s thread to ``target``, accepted and run to delivery; its id."""
        body = handoff_body(self.source_thread(source), source=source, target=target, **extra)
        view, _ = self.accept(body, Caller("agentKey", name=source))
        self.run()
        return view.id

    def hand_back(
        self,
        handoff_id: str,
        body: dict[str, Any] | None = None,
        caller: Caller = CHECKOUT,
        key: str | None = None,
    ) -> tuple[HandoffView, bool]:
        """``POST /api/handoffs/{id}/handback``."""
        return self.handbacks.hand_back(handoff_id, as_bytes(body or handback_body()), caller, key)

    def process(self, message: dict[str, Any], dequeue_count: int = 1) -> None:
        """One run of the delivery worker on ``message``."""
        self.worker.process(message, dequeue_count)

    def run(self, *, limit: int = 200) -> list[dict[str, Any]]:
        """Run the delivery queue to empty, as the Functions host would (moving the clock to each
        delayed message)."""
        return self.queue.drain(self.process, limit=limit)

    def step(self) -> dict[str, Any]:
        """Run the next message (moving the clock to it when it is delayed); returns it."""
        queued = self.queue.take()
        assert queued is not None, "the queue is empty"
        self.process(queued.message, queued.dequeue_count)
        return queued.message

    def run_visible(self) -> list[dict[str, Any]]:
        """Run only the messages visible now."""
        return self.queue.drain(self.process, advance=False)

    def sweep(self) -> SweepReport:
        """One run of the sweeper timer."""
        return self.sweeper.sweep()

    # ---------------------------------------------------------------- reading back

    def state(self, handoff_id: str) -> HandoffState:
        return self.store.state(handoff_id)

    def events(self, handoff_id: str) -> list[str]:
        return self.store.event_types(handoff_id)

    def event(self, handoff_id: str, type: str) -> dict[str, Any]:
        """The details of the only audit event of ``type``."""
        found = [e.details for e in self.store.events(handoff_id) if e.type == type]
        assert len(found) == 1, f"{type}: {len(found)} events in {self.events(handoff_id)}"
        return found[0]


class RecordingListener:
    """A lifecycle listener that writes down what it is told."""

    def __init__(self, seen: list[tuple[str, str, dict[str, Any]]]) -> None:
        self.seen = seen

    def on_lifecycle(self, record: Any, point: str, details: dict[str, Any]) -> None:
        self.seen.append((record.id, point, dict(details)))


def build_world(
    registry_data: dict[str, Any] | None = None,
    *,
    bare: bool = False,
    listener: LifecycleListener | None = None,
    over: World | None = None,
    **settings: Any,
) -> World:
    """A broker on fresh in-memory ports. ``bare``: built without the optional ports (chain index, A2A
    client, history, lifecycle listener). ``over``: another broker instance on ``over``'s storage,
    queue, agents and clock (a second worker, or one with another registry)."""
    values: dict[str, Any] = {"public_base_url": BASE_URL, "retry_base_seconds": 2.0}
    values.update(settings)
    config = Settings.model_validate(values)
    registry = Registry.from_data(registry_data or REGISTRY_DATA)
    if over is not None:
        clock, store, queue, agents = over.clock, over.store, over.queue, over.agents
        remote, chains, history, index = over.remote, over.chains, over.history, over.index
    else:
        clock = Clock()
        chains = MemoryChainStore()
        store = MemoryHandoffStore(clock, chains)
        queue = MemoryDeliveryQueue(clock, config.max_dequeue_count)
        agents = MemoryAgentGateway(clock)
        remote = MemoryRemoteAgentGateway()
        history = MemoryHistoryIndex(registry)
        index = MemoryHandoffIndex()
    seen: list[tuple[str, str, dict[str, Any]]] = []
    handoffs = build_handoffs(
        settings=config,
        registry=registry,
        store=store,
        queue=queue,
        agents=agents,
        clock=clock,
        chains=None if bare else chains,
        remote_agents=None if bare else remote,
        lifecycle=None if bare else listener or RecordingListener(seen),
        history=None if bare else history,
        index=None if bare else index,
    )
    return World(
        config, registry, clock, store, queue, agents, remote, chains, history, handoffs, seen, index
    )


@pytest.fixture
def world() -> World:
    """A broker on fresh in-memory ports."""
    return build_world()


# ---------------------------------------------------------------- the count gate
# `make test` sets HANDOFF_MIN_UNIT_TESTS: a unit run that executes fewer tests than that fails, so tests
# that stop being collected (an import error skipped, a renamed file) cannot pass the gate unnoticed.

_MIN_UNIT_TESTS = "HANDOFF_MIN_UNIT_TESTS"
_ran: list[str] = []


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    if report.when == "call":
        _ran.append(report.nodeid)


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    minimum = int(os.environ.get(_MIN_UNIT_TESTS) or 0)
    if len(_ran) >= minimum:
        return
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    if reporter is not None:
        reporter.write("\n")
        reporter.write_line(f"{len(_ran)} tests ran, fewer than {_MIN_UNIT_TESTS}={minimum}", red=True)
    if exitstatus == pytest.ExitCode.OK:
        session.exitstatus = pytest.ExitCode.TESTS_FAILED
