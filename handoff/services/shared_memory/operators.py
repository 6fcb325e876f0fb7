"""For operators: the state of a handoff's writes, and the replay of those that failed for good."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

from handoff.domain.audit_events import Actor, EventType
from handoff.domain.errors import NotFound, Unprocessable, single_field
from handoff.domain.registry import Registry
from handoff.domain.shared_memory.writes import WriteRow, parse_write_key
from handoff.ports import DeliveryQueue, HandoffStore, WriteStateStore
from handoff.services.shared_memory.ledger import record_of


class WriteOperations:
    """Shows and replays a handoff's writes."""

    def __init__(
        self,
        *,
        registry: Registry,
        state: WriteStateStore,
        store: HandoffStore,
        queue: DeliveryQueue,
        clock: Callable[[], datetime],
    ) -> None:
        self.registry = registry
        self.state = state
        self.store = store
        self.queue = queue
        self.clock = clock

    def replay(
        self, handoff_id: str, backend: str | None = None, actor: str = Actor.BROKER
    ) -> dict[str, Any]:
        """Re-queue the handoff's failed writes (optionally of one backend) with a fresh 24-hour budget."""
        if record_of(self.store, handoff_id) is None:
            raise NotFound(f"no handoff with id {handoff_id}")
        if backend is not None and self.registry.shared_memory.find(backend) is None:
            raise single_field(Unprocessable, "/backend", f"'{backend}' is not a configured backend")
        replayed = []
        now = self.clock()
        for write in self.state.list_writes(handoff_id):
            if write.get("Status") != "failed":
                continue
            point, seq, name = parse_write_key(write["Key"])
            if backend is not None and name.lower() != backend.lower():
                continue
            self.state.put_write(
                handoff_id, write["Key"], {"Status": "pending", "Error": None, "UpdatedAt": now}
            )
            self.queue.send(
                {
                    "handoffId": handoff_id,
                    "point": point,
                    "seq": seq,
                    "backend": name,
                    "attempt": 1,
                    "firstAt": now.isoformat(),
                    "details": {},
                    "replay": True,
                }
            )
            replayed.append({"backend": name, "point": point, "seq": seq})
        if replayed:
            self.store.append_audit(
                handoff_id, EventType.SHARED_MEMORY_REPLAY_SCHEDULED, actor, {"writes": replayed}
            )
        return {"handoffId": handoff_id, "replayed": replayed}

    def writes(self, handoff_id: str) -> list[dict[str, Any]]:
        """The state of every shared-memory write of a handoff (for people and tests)."""
        return [_view(write) for write in self.state.list_writes(handoff_id)]


def _view(write: WriteRow) -> dict[str, Any]:
    point, seq, name = parse_write_key(write["Key"])
    return {
        "backend": name,
        "point": point,
        "seq": seq,
        "status": write.get("Status"),
        "destination": write.get("Destination"),
        "url": write.get("Url"),
        "attempts": write.get("Attempts") or 0,
        "error": write.get("Error"),
    }
