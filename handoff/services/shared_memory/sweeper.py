"""The shared-memory sweeper: writes a worker started and then left (it died mid-write) are queued
again, and given up after :data:`~handoff.services.policy.MAX_SWEEPS` re-queues without progress."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from handoff.domain.audit_events import Actor, EventType
from handoff.domain.shared_memory.writes import WriteRow, parse_time
from handoff.ports import DeliveryQueue, HandoffStore, WriteStateStore
from handoff.services.policy import MAX_SWEEPS, SweepReport, sweep_gives_up
from handoff.services.shared_memory.ledger import WriteLedger
from handoff.settings import Settings

log = logging.getLogger("handoff")


@dataclass(frozen=True, kw_only=True)
class WriteSweeper:
    """Re-queues stranded writes; the worker that takes one looks for the earlier attempt's note
    before writing, so nothing is written twice."""

    settings: Settings
    state: WriteStateStore
    store: HandoffStore
    queue: DeliveryQueue
    ledger: WriteLedger
    clock: Callable[[], datetime]

    def sweep(self) -> SweepReport:
        """Queue again the writes a worker started and then left (it crashed mid-write): ``pending``,
        tried, with no change for ``sweep_after_seconds`` and no retry due within it. The worker that
        takes the message looks for the earlier attempt's note before writing (``writer.find``).
        A write swept :data:`~handoff.services.policy.MAX_SWEEPS` times with no change in between is
        failed (and replayable), as the delivery sweeper does."""
        now = self.clock()
        cutoff = now - timedelta(seconds=self.settings.sweep_after_seconds)
        report = SweepReport()
        for write in self.state.stale_writes(cutoff):
            try:
                self._sweep_one(write, now, cutoff, report)
            except Exception:
                report.errors += 1
                log.exception("sweeper: could not sweep shared-memory write %s", write.get("Key"))
        return report

    def _sweep_one(self, write: WriteRow, now: datetime, cutoff: datetime, report: SweepReport) -> None:
        handoff_id = str(write.get("PartitionKey", "")).removeprefix("w|")
        key = str(write.get("Key") or "")
        retry_at, swept_at = parse_time(write.get("RetryAt")), parse_time(write.get("SweptAt"))
        if not write.get("Attempted") or not write.get("Message"):
            return  # not started, or started before writes kept their message: the queue brings it back
        if (retry_at and retry_at > cutoff) or (swept_at and swept_at > cutoff):
            return  # a retry is due, or it was swept a moment ago: give the message its time
        message = json.loads(str(write["Message"]))
        updated = parse_time(write.get("UpdatedAt"))
        mark = updated.isoformat() if updated else ""
        sweeps = int(write.get("Sweeps") or 0) + 1 if write.get("SweepMark") == mark else 1
        if updated is not None and sweep_gives_up(sweeps, now - updated):
            reason = f"no progress after {MAX_SWEEPS} re-queues by the sweeper"
            self.ledger.fail(handoff_id, key, message, reason)
            report.gave_up += 1
            return
        self.state.put_write(handoff_id, key, {"SweptAt": now, "Sweeps": sweeps, "SweepMark": mark})
        self.queue.send({**message, "attempt": int(write.get("Attempts") or 1) + 1})
        self.store.append_audit(
            handoff_id,
            EventType.SHARED_MEMORY_REQUEUED,
            Actor.SYSTEM,
            {
                "backend": message.get("backend"),
                "point": message.get("point"),
                "seq": message.get("seq"),
                "reason": "no activity",
                "sweep": sweeps,
            },
        )
        report.requeued += 1
