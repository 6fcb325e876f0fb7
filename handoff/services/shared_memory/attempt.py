"""One write attempt, exactly once in effect: a write that was tried before first looks for its marker
on the backend (the earlier attempt may have landed before its answer was lost) and writes only when
the marker is not there."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import datetime

from handoff.domain.audit_events import Actor, EventType
from handoff.domain.records import HandoffRecord
from handoff.domain.shared_memory.config import Backend
from handoff.domain.shared_memory.destinations import destination_key
from handoff.domain.shared_memory.human_entries import ACTIVE
from handoff.domain.shared_memory.writes import Destination, WriteJob, WriteOrder, WriteRow
from handoff.ports import DestinationIndex, HandoffStore, Writer, Writers, WriteStateStore
from handoff.services.shared_memory.jobs import JobBuilder
from handoff.services.shared_memory.publisher import index_record


def _facts(backend: Backend, order: WriteOrder) -> dict[str, str | int]:
    """What every audit event of a write names."""
    return {"backend": backend.name, "point": order.point, "seq": order.seq}


class WriteAttempt:
    """Performs one write through the backend's writer (a :class:`WriteError` escapes for the retry
    policy)."""

    def __init__(
        self,
        *,
        state: WriteStateStore,
        store: HandoffStore,
        writers: Writers,
        jobs: JobBuilder,
        clock: Callable[[], datetime],
        destinations: DestinationIndex | None,
    ) -> None:
        self.state = state
        self.store = store
        self.writers = writers
        self.jobs = jobs
        self.clock = clock
        self.destinations = destinations

    def run(
        self, record: HandoffRecord, backend: Backend, order: WriteOrder, key: str, current: WriteRow
    ) -> None:
        """Write ``order`` (state ``current`` under ``key``): skipped when the handoff has nothing to
        write to on the backend, else written once (or found written by an earlier attempt)."""
        first_at = order.first_at or self.clock()
        job = self.jobs.job(record, backend, order.point, order.seq, order.details(), first_at)
        writer = self.writers.writer_for(backend)
        dest = writer.destination(job)
        if dest is None:
            self.state.put_write(record.id, key, {"Status": "skipped", "UpdatedAt": self.clock()})
            self.store.append_audit(
                record.id,
                EventType.SHARED_MEMORY_SKIPPED,
                Actor.BROKER,
                {
                    **_facts(backend, order),
                    "reason": f"nothing to write to on {backend.type} for this handoff",
                },
            )
            return
        index_record(
            self.destinations,
            backend,
            destination_key(backend.type, dest.data),
            record.id,
            active=record.state.status in ACTIVE,
        )
        existing = writer.find(dest, job) if current.get("Attempted") else None
        if existing is None:
            url, recovered = self._send(writer, dest, job, order, key, current), False
        else:
            url, recovered = existing, True
        self.state.put_write(
            record.id,
            key,
            {
                "Status": "written",
                "Url": url,
                "Destination": dest.label,
                "UpdatedAt": self.clock(),
            },
        )
        self.store.append_audit(
            record.id,
            EventType.SHARED_MEMORY_WRITTEN,
            Actor.BROKER,
            {
                **_facts(backend, order),
                "destination": dest.label,
                "url": url,
                "foundExisting": recovered,
                "marker": job.note.marker,
            },
        )

    def _send(
        self, writer: Writer, dest: Destination, job: WriteJob, order: WriteOrder, key: str, current: WriteRow
    ) -> str:
        """Mark the write attempted (with the message the sweeper re-queues should this worker die
        before it settles), audit the attempt, then write."""
        handoff_id = job.record.id
        self.state.put_write(
            handoff_id,
            key,
            {
                "Status": "pending",
                "Attempted": True,
                "Attempts": int(current.get("Attempts") or 0) + 1,
                "Destination": dest.label,
                "UpdatedAt": self.clock(),
                "Message": json.dumps({k: v for k, v in order.message.items() if k != "attempt"}),
            },
        )
        self.store.append_audit(
            handoff_id,
            EventType.SHARED_MEMORY_ATTEMPT,
            Actor.BROKER,
            {
                **_facts(job.backend, order),
                "attempt": order.attempt,
                "destination": dest.label,
                "marker": job.note.marker,
            },
        )
        return writer.write(dest, job)
