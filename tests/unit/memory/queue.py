"""The :class:`~handoff.ports.DeliveryQueue` port in memory, with the Functions host's queue semantics for
:meth:`MemoryDeliveryQueue.drain`.

Like :class:`handoff.adapters.azure_storage.handoffs.StorageQueue`, a message is stored as JSON (what
cannot be serialised fails at ``send``) and its visibility delay is whole seconds between 0 and 7 days.
``drain`` plays the host: it hands visible messages to a worker oldest first, with their dequeue count;
a run that raises makes the message visible again after the host's visibility timeout, and after
``maxDequeueCount`` failed runs the host moves it to the poison queue.
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from tests.unit.memory.clock import Clock
from tests.unit.memory.faults import StorageFaults

MAX_DELAY_SECONDS = 604_800
HOST_VISIBILITY_TIMEOUT = timedelta(seconds=5)  # host.json extensions.queues.visibilityTimeout
HOST_MAX_DEQUEUE_COUNT = 5  # host.json extensions.queues.maxDequeueCount

Worker = Callable[[dict[str, Any], int], None]


@dataclass
class Queued:
    """One message on the queue."""

    message: dict[str, Any]
    delay: float  # as the sender asked
    visible_at: datetime | None  # None without a clock: visible at once
    order: int
    dequeue_count: int = 0

    @property
    def visibility_seconds(self) -> int:
        """The delay the queue service is given (whole seconds, at most 7 days)."""
        return max(0, min(int(self.delay), MAX_DELAY_SECONDS))


@dataclass
class Failure:
    """A run of the worker that raised."""

    message: dict[str, Any]
    dequeue_count: int
    error: Exception


def _due(queued: Queued) -> tuple[float, int]:
    return (queued.visible_at.timestamp() if queued.visible_at else 0.0, queued.order)


class MemoryDeliveryQueue:
    """Implements :class:`handoff.ports.DeliveryQueue` in memory, plus the host's side (``drain``)."""

    def __init__(self, clock: Clock | None = None, max_dequeue_count: int = HOST_MAX_DEQUEUE_COUNT) -> None:
        self.clock = clock
        self.max_dequeue_count = max_dequeue_count
        self.faults = StorageFaults()
        self.sent: list[Queued] = []  # every message ever sent, in order
        self.pending: list[Queued] = []  # sent and not yet taken by a worker
        self.poison: list[dict[str, Any]] = []
        self.failures: list[Failure] = []
        self._order = itertools.count()

    # ---------------------------------------------------------------- DeliveryQueue

    def send(self, message: dict[str, Any], delay_seconds: float = 0) -> None:
        self.faults.check("send")
        copy = json.loads(json.dumps(message))
        queued = Queued(copy, float(delay_seconds), None, next(self._order))
        if self.clock is not None:
            queued.visible_at = self.clock() + timedelta(seconds=queued.visibility_seconds)
        self.sent.append(queued)
        self.pending.append(queued)

    def send_poison(self, message: dict[str, Any]) -> None:
        self.faults.check("send_poison")
        self.poison.append(json.loads(json.dumps(message)))

    # ---------------------------------------------------------------- the host's side (tests only)

    def messages(self, op: str | None = None) -> list[dict[str, Any]]:
        """The pending messages (optionally of one ``op``), oldest first."""
        return [q.message for q in self.pending if op is None or q.message.get("op") == op]

    def delays(self, op: str | None = None) -> list[float]:
        """The delays the pending messages were sent with (optionally of one ``op``)."""
        return [q.delay for q in self.pending if op is None or q.message.get("op") == op]

    def clear(self) -> None:
        """Forget the pending messages (as if another worker took them)."""
        self.pending.clear()

    def take(self, *, advance: bool = True) -> Queued | None:
        """The next message a worker would get: the first visible one, moving the clock to it when
        ``advance`` (None when the queue is empty, or nothing is visible yet and not ``advance``)."""
        if not self.pending:
            return None
        ready = min(self.pending, key=_due)
        if self.clock is not None and ready.visible_at is not None and ready.visible_at > self.clock():
            if not advance:
                return None
            self.clock.set(ready.visible_at)
        self.pending.remove(ready)
        ready.dequeue_count += 1
        return ready

    def drain(self, worker: Worker, *, limit: int = 200, advance: bool = True) -> list[dict[str, Any]]:
        """Run ``worker(message, dequeue_count)`` on each message as the host would, until the queue is
        empty (or nothing is visible and not ``advance``). Returns the messages run, in order. More than
        ``limit`` runs means the work never settles: an :class:`AssertionError`."""
        ran: list[dict[str, Any]] = []
        while (queued := self.take(advance=advance)) is not None:
            if len(ran) >= limit:
                raise AssertionError(f"the queue did not drain within {limit} runs: {queued.message}")
            ran.append(queued.message)
            try:
                worker(json.loads(json.dumps(queued.message)), queued.dequeue_count)
            except Exception as exc:
                self.failures.append(Failure(queued.message, queued.dequeue_count, exc))
                if queued.dequeue_count >= self.max_dequeue_count:
                    self.poison.append(queued.message)
                    continue
                if self.clock is not None:
                    queued.visible_at = self.clock() + HOST_VISIBILITY_TIMEOUT
                self.pending.append(queued)
        return ran
