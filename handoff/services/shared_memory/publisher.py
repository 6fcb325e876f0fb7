"""Lifecycle points become queued writes: one message per (handoff, point, backend)."""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any

from handoff.domain.audit_events import Actor, EventType
from handoff.domain.records import HandoffRecord
from handoff.domain.registry import Registry
from handoff.domain.shared_memory.config import Backend
from handoff.domain.shared_memory.destinations import known_destination
from handoff.ports import DeliveryQueue, DestinationIndex, HandoffStore
from handoff.services.context import utcnow

log = logging.getLogger("handoff")
# Only these event details travel in queue messages and audit records (secret-free by construction).
DETAIL_KEYS = ("reason", "pagerdutyIncidentId", "threadId")


def _named_backends(registry: Registry, record: HandoffRecord, extra: Sequence[str]) -> list[str]:
    """The target agent's ``sharedMemory``, the handoff's own (an alert route's) and ``extra``."""
    agent = registry.find(record.stored.target_agent)
    return list(agent.shared_memory if agent else ()) + list(record.stored.shared_memory) + list(extra)


def destinations(
    registry: Registry, record: HandoffRecord, point: str, extra: Sequence[str] = ()
) -> list[str]:
    """Backends to write for ``point`` of ``record``: the target agent's ``sharedMemory`` plus ``extra``
    (for example the names on the alert route that opened the handoff), those whose ``on`` includes
    ``point``, each once."""
    result: list[str] = []
    for name in _named_backends(registry, record, extra):
        backend = registry.shared_memory.find(name)
        if backend is None:
            log.warning("shared-memory backend %r is not configured; skipped", name)
            continue
        if point in backend.on and backend.name not in result:
            result.append(backend.name)
    return result


def index_record(
    index: DestinationIndex | None,
    backend: Backend,
    destination: str | None,
    handoff_id: str,
    *,
    active: bool = True,
) -> None:
    """Index a handoff on a record of a backend that reads people's entries back, and list the record
    for polling while the investigation is ``active`` on a backend that polls (a failure is logged: it
    never holds up a write or a delivery)."""
    if index is None or not destination or not backend.reads_entries:
        return
    try:
        index.index_destination(backend.name, destination, handoff_id, poll=backend.polls and active)
    except Exception:
        log.exception("could not index %s on %s %s", handoff_id, backend.name, destination)


class SharedMemoryPublisher:
    """The lifecycle listener: enqueues one write per configured backend (never performs one)."""

    def __init__(
        self,
        registry: Registry,
        queue: DeliveryQueue,
        store: HandoffStore,
        clock: Callable[[], datetime] = utcnow,
        destinations: DestinationIndex | None = None,
    ) -> None:
        self.registry = registry
        self.queue = queue
        self.store = store
        self.clock = clock
        self.destinations = destinations

    def on_lifecycle(self, record: HandoffRecord, point: str, details: dict[str, Any]) -> None:
        """Queue the writes of ``point``; ``details["sharedMemory"]`` adds backend names."""
        extra = [str(name) for name in details.get("sharedMemory") or ()]
        if point == "delivered" and self.destinations is not None:
            self._index_named_records(record, details, extra)
        names = destinations(self.registry, record, point, extra)
        if not names:
            return
        seq = int(details.get("seq") or 0)
        kept = {key: details[key] for key in DETAIL_KEYS if details.get(key) is not None}
        first_at = self.clock().isoformat()
        for name in names:
            self.queue.send(
                {
                    "handoffId": record.id,
                    "point": point,
                    "seq": seq,
                    "backend": name,
                    "attempt": 1,
                    "firstAt": first_at,
                    "details": kept,
                }
            )
        self.store.append_audit(
            record.id,
            EventType.SHARED_MEMORY_QUEUED,
            Actor.BROKER,
            {"point": point, "seq": seq, "backends": names},
        )

    def _index_named_records(self, record: HandoffRecord, details: dict[str, Any], extra: list[str]) -> None:
        """Humans in the loop: index the records the handoff names on its backends (whatever ``on``
        says), so what people write there while the investigation runs reaches its agents."""
        for name in dict.fromkeys(_named_backends(self.registry, record, extra)):
            backend = self.registry.shared_memory.find(name)
            if backend is not None and backend.reads_entries:
                index_record(
                    self.destinations, backend, known_destination(backend, record, details), record.id
                )
