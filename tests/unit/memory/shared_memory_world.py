"""A shared-memory world on in-memory ports: the backends, the settings, the worker service and its
fakes, and helpers that script what a backend does."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from handoff.domain.shared_memory.writes import WriteError
from handoff.services.shared_memory.worker import SharedMemoryService
from handoff.settings import Settings
from tests.unit.memory.shared_memory import (
    LOST_ANSWER,
    FakeClock,
    MemoryHandoffStore,
    MemoryInboundStore,
    MemoryQueue,
    MemoryWriters,
    MemoryWriteState,
    registry,
)

ALL_POINTS = ["delivered", "handedBack", "failed", "alertResolved"]
GH = {
    "name": "gh",
    "type": "github",
    "baseUrl": "https://api.github.com",
    "repo": "contoso/shop",
    "secretSetting": "GH_TOKEN",
    "webhookSecretSetting": "GH_HOOK",
    "on": ALL_POINTS,
}
PD = {
    "name": "pd",
    "type": "pagerduty",
    "baseUrl": "https://api.pagerduty.com",
    "secretSetting": "PD_TOKEN",
    "fromEmail": "oncall@contoso.com",
    "on": ["handedBack", "failed"],
}
JIRA = {
    "name": "jira",
    "type": "jira",
    "baseUrl": "https://contoso.atlassian.net",
    "secretSetting": "JIRA_TOKEN",
    "issue": "OPS-1",
    "on": ALL_POINTS,
}
SN = {
    "name": "sn",
    "type": "servicenow",
    "baseUrl": "https://contoso.service-now.com",
    "secretSetting": "SN_TOKEN",
    "on": ALL_POINTS,
}
H1 = "0b7e4c1e-0000-4000-8000-000000000001"
H2 = "0b7e4c1e-0000-4000-8000-000000000002"
H3 = "0b7e4c1e-0000-4000-8000-000000000003"
SETTINGS = Settings(
    public_base_url="https://broker.example.com",
    shared_memory_retry_base_seconds=2.0,
    shared_memory_retry_max_seconds=60.0,
    shared_memory_max_age_seconds=600.0,
    sweep_after_seconds=60,
)


@dataclass
class World:
    clock: FakeClock
    store: MemoryHandoffStore
    queue: MemoryQueue
    state: MemoryWriteState
    writers: MemoryWriters
    index: MemoryInboundStore
    service: SharedMemoryService

    def message(
        self, handoff_id: str = H1, point: str = "handedBack", seq: int = 1, backend: str = "gh", **extra: Any
    ) -> dict[str, Any]:
        return {
            "handoffId": handoff_id,
            "point": point,
            "seq": seq,
            "backend": backend,
            "attempt": 1,
            "firstAt": self.clock().isoformat(),
            "details": {},
            **extra,
        }

    def row(self, handoff_id: str = H1, key: str = "handedBack:1|gh") -> dict[str, Any]:
        return self.state.rows.get((handoff_id, key), {})

    def run_queue(self, limit: int = 50) -> int:
        """Process the queued messages one by one, the clock moving on by each message's delay."""
        runs = 0
        while self.queue.sent and runs < limit:
            message, delay = self.queue.sent.pop(0)
            self.clock.advance(delay)
            self.service.process(message)
            runs += 1
        return runs


def make_world(backends: list[dict[str, Any]] | None = None, settings: Settings = SETTINGS) -> World:
    clock = FakeClock()
    store = MemoryHandoffStore(clock)
    queue, state, writers, index = MemoryQueue(), MemoryWriteState(), MemoryWriters(), MemoryInboundStore()
    service = SharedMemoryService(
        settings=settings,
        registry=registry(backends or [GH, PD, JIRA, SN], checkout=["gh"]),
        store=store,
        queue=queue,
        state=state,
        writers=writers,
        clock=clock,
        destinations=index,
    )
    return World(clock, store, queue, state, writers, index, service)


def fail_with(world: World, *errors: WriteError, backend: str = "gh") -> None:
    """The next writes to ``backend`` raise ``errors`` in order."""
    found = world.service.registry.shared_memory.find(backend)
    world.writers.writer_for(found).failures = list(errors)


def strand(world: World) -> None:
    """A write whose worker died after sending it (pending, attempted, its message kept)."""
    fail_with(world, LOST_ANSWER)
    world.service.process(world.message())
    world.queue.take()
    world.state.put_write(H1, "handedBack:1|gh", {"RetryAt": None})
