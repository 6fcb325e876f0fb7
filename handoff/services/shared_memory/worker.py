"""The shared-memory worker: performs each queued write once in effect, with its own retries, and is
the one entry for the sweeper and for operators."""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime
from typing import Any

from handoff.domain.audit_events import Actor
from handoff.domain.ids import is_uuid
from handoff.domain.registry import Registry
from handoff.domain.shared_memory.writes import SETTLED, WriteError, WriteOrder, write_key
from handoff.ports import DeliveryQueue, DestinationIndex, HandoffStore, Writers, WriteStateStore
from handoff.services.context import utcnow
from handoff.services.policy import SweepReport
from handoff.services.shared_memory.attempt import WriteAttempt
from handoff.services.shared_memory.jobs import JobBuilder
from handoff.services.shared_memory.ledger import WriteLedger, record_of
from handoff.services.shared_memory.operators import WriteOperations
from handoff.services.shared_memory.retry import RetryPolicy, hold_key
from handoff.services.shared_memory.sweeper import WriteSweeper
from handoff.settings import Settings

log = logging.getLogger("handoff")
# A write held by its backend's rate limit is taken again this long after the hold ends.
HOLD_MARGIN_SECONDS = 0.5


class SharedMemoryService:
    """Performs shared-memory writes from their queue; exactly-once in effect by markers."""

    def __init__(
        self,
        *,
        settings: Settings,
        registry: Registry,
        store: HandoffStore,
        queue: DeliveryQueue,
        state: WriteStateStore,
        writers: Writers,
        clock: Callable[[], datetime] = utcnow,
        destinations: DestinationIndex | None = None,
    ) -> None:
        self.settings = settings
        self.registry = registry
        self.store = store
        self.queue = queue
        self.state = state
        self.clock = clock
        self.ledger = WriteLedger(state, store, queue, clock)
        self.attempt = WriteAttempt(
            state=state,
            store=store,
            writers=writers,
            jobs=JobBuilder(settings, registry, store),
            clock=clock,
            destinations=destinations,
        )
        self.retry = RetryPolicy(
            settings=settings, state=state, store=store, queue=queue, ledger=self.ledger, clock=clock
        )
        self.sweeper = WriteSweeper(
            settings=settings, state=state, store=store, queue=queue, ledger=self.ledger, clock=clock
        )
        self.operations = WriteOperations(
            registry=registry, state=state, store=store, queue=queue, clock=clock
        )

    # -------------------------------------------------------------- queue work

    def process(self, message: dict[str, Any], dequeue_count: int = 1) -> None:
        """Run one write message. Failures reschedule through the queue with backoff until the
        write's age passes ``HANDOFF_SHARED_MEMORY_MAX_AGE_SECONDS``; then it is ``failed``.

        Whatever else raises is re-raised for the host to retry; on the last dequeue the write is
        marked failed first (its state row and an audit event, nothing read), with the exception's type
        as the reason."""
        try:
            self._process(message)
        except Exception as exc:
            if dequeue_count >= self.settings.max_dequeue_count:
                self._fail_poisoned(message, exc)
            raise

    def _fail_poisoned(self, message: dict[str, Any], exc: Exception) -> None:
        try:
            handoff_id = str(message["handoffId"])
            point, backend, seq = str(message["point"]), str(message["backend"]), int(message["seq"])
            names_write = is_uuid(handoff_id)
        except (KeyError, TypeError, ValueError):
            names_write = False
        if not names_write:
            log.error("poisoned shared-memory message names no write (%s): %s", type(exc).__name__, message)
            return
        reason = f"unexpected error: {type(exc).__name__}"
        try:
            found = self.registry.shared_memory.find(backend)
            backend = found.name if found is not None else backend
            self.ledger.fail(handoff_id, write_key(point, seq, backend), message, reason)
        except Exception:
            log.exception("could not mark shared-memory write %s failed before poisoning", message)

    def _process(self, message: dict[str, Any]) -> None:
        order = WriteOrder.read(message)
        record = record_of(self.store, order.handoff_id)
        backend = self.registry.shared_memory.find(order.backend)
        if record is None or backend is None:
            log.warning("dropping shared-memory message for unknown handoff or backend: %s", message)
            return
        key = write_key(order.point, order.seq, backend.name)
        current = self.state.get_write(order.handoff_id, key) or {}
        if current.get("Status") in SETTLED:
            return  # a duplicate message: this write is settled (replay resets failed writes first)
        now = self.clock()
        blocked = self.state.blocked_until(hold_key(backend.name))
        if blocked and blocked > now:
            # The backend asked us to wait: not an attempt, just later.
            delay = (blocked - now).total_seconds() + HOLD_MARGIN_SECONDS
            self.ledger.later(record.id, key, current, delay)
            self.queue.send(message, delay)
            return
        try:
            self.attempt.run(record, backend, order, key, current)
        except WriteError as exc:
            self.retry.after_error(record, backend, order, key, exc)

    # -------------------------------------------------------------- sweeper and operators

    def sweep(self) -> SweepReport:
        """Queue again the writes a worker started and then left (see :class:`WriteSweeper`)."""
        return self.sweeper.sweep()

    def replay(
        self, handoff_id: str, backend: str | None = None, actor: str = Actor.BROKER
    ) -> dict[str, Any]:
        """Re-queue the handoff's failed writes (optionally of one backend) with a fresh 24-hour budget."""
        return self.operations.replay(handoff_id, backend, actor)

    def writes(self, handoff_id: str) -> list[dict[str, Any]]:
        """The state of every shared-memory write of a handoff (for people and tests)."""
        return self.operations.writes(handoff_id)
