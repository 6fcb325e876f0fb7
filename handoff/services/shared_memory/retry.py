"""What follows a write that did not happen: wait for its turn, skip it, retry it with back-off (every
write to a backend waits when the backend rate-limits us), or give up once it is older than
``HANDOFF_SHARED_MEMORY_MAX_AGE_SECONDS``."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from handoff.domain.audit_events import Actor, EventType
from handoff.domain.records import HandoffRecord
from handoff.domain.shared_memory.config import Backend
from handoff.domain.shared_memory.writes import WriteError, WriteOrder
from handoff.ports import DeliveryQueue, HandoffStore, WriteStateStore
from handoff.services.policy import backoff_seconds, gave_up_reason
from handoff.services.shared_memory.ledger import WriteLedger
from handoff.settings import Settings

# The shortest wait before a write waiting for its turn (or for a backend's hold) is taken again.
MIN_WAIT_SECONDS = 0.5


def hold_key(backend: str) -> str:
    """Key of the hold that makes every write to ``backend`` wait (a rate limit it reported)."""
    return f"backend|{backend}"


@dataclass(frozen=True, kw_only=True)
class RetryPolicy:
    """Decides and records what happens after a :class:`WriteError`."""

    settings: Settings
    state: WriteStateStore
    store: HandoffStore
    queue: DeliveryQueue
    ledger: WriteLedger
    clock: Callable[[], datetime]

    def wait(self, handoff_id: str, key: str, order: WriteOrder, delay: float) -> None:
        """Take the message again in ``delay`` seconds: not an attempt, just later."""
        self.ledger.later(handoff_id, key, self.state.get_write(handoff_id, key) or {}, delay)
        self.queue.send(order.message, delay)

    def after_error(
        self, record: HandoffRecord, backend: Backend, order: WriteOrder, key: str, exc: WriteError
    ) -> None:
        """Defer, skip, retry or fail the write ``key`` of ``order`` after ``exc``."""
        now = self.clock()
        if exc.deferral:
            self.wait(record.id, key, order, max(MIN_WAIT_SECONDS, exc.retry_after or 1.0))
            return
        if exc.skip:
            self.state.put_write(record.id, key, {"Status": "skipped", "Error": exc.reason, "UpdatedAt": now})
            self.store.append_audit(
                record.id,
                EventType.SHARED_MEMORY_WARNING,
                Actor.BROKER,
                {"backend": backend.name, "point": order.point, "seq": order.seq, "reason": exc.reason},
            )
            return
        if exc.backend_wide and exc.retry_after:
            self.state.block(hold_key(backend.name), now + timedelta(seconds=exc.retry_after))
        if not exc.transient or not self._retry(record, backend, order, key, exc, now):
            self.ledger.fail(record.id, key, order.message, gave_up_reason(exc, order.attempt))

    def _retry(
        self,
        record: HandoffRecord,
        backend: Backend,
        order: WriteOrder,
        key: str,
        exc: WriteError,
        now: datetime,
    ) -> bool:
        """Schedule the next attempt with back-off (never before ``Retry-After``); False when it would
        come after the write's deadline."""
        settings = self.settings
        delay = backoff_seconds(
            order.attempt,
            exc.retry_after,
            settings.shared_memory_retry_base_seconds,
            settings.shared_memory_retry_max_seconds,
        )
        deadline = (order.first_at or now) + timedelta(seconds=settings.shared_memory_max_age_seconds)
        retry_at = now + timedelta(seconds=delay)
        if retry_at > deadline:
            return False
        self.state.put_write(record.id, key, {"Error": exc.reason, "UpdatedAt": now, "RetryAt": retry_at})
        self.store.append_audit(
            record.id,
            EventType.SHARED_MEMORY_RETRY_SCHEDULED,
            Actor.BROKER,
            {
                "backend": backend.name,
                "point": order.point,
                "seq": order.seq,
                "attempt": order.attempt,
                "reason": exc.reason,
                "delaySeconds": round(delay, 1),
                "rateLimited": exc.backend_wide,
            },
        )
        self.queue.send(order.next_attempt(), delay)
        return True
