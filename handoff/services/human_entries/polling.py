"""The polling fallback of webhooks: on a timer, read the records of active investigations on backends
that poll (``inbound: "poll"`` or ``"both"``) and take what people wrote there, as a webhook would.

Each record is read at most once per ``HANDOFF_HUMAN_POLL_SECONDS`` (claimed in storage, so several
instances never read it twice), only while an investigation indexed on it is active: a closed one is
forgotten the first time the poller meets it. A backend that rate-limits the broker is skipped until
the time it names (the same hold its writes wait for). Entries go to the same
:class:`~handoff.services.human_entries.claiming.EntryClaimer` as webhooks, which claims each backend
and entry id once: a webhook and a poll never post the same entry twice.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta

from handoff.domain.errors import Unprocessable
from handoff.domain.shared_memory.config import WebhookBackend
from handoff.domain.shared_memory.human_entries import ACTIVE
from handoff.domain.shared_memory.polling import PolledHandoff, PolledRecord
from handoff.domain.shared_memory.writes import WriteError
from handoff.ports import BackendHolds, EntryReaders, PollIndex
from handoff.services.context import ServiceContext
from handoff.services.human_entries.claiming import EntryClaimer
from handoff.services.shared_memory.retry import hold_key

log = logging.getLogger("handoff")
# Records listed per backend and tick, and read per backend and tick (the rest wait for the next).
MAX_LISTED = 1000
MAX_READS_PER_TICK = 100
# A rate limit that names no time holds the backend this long.
DEFAULT_HOLD_SECONDS = 60.0


@dataclass
class PollReport:
    """What one tick did, for the timer's log line."""

    polled: int = 0
    queued: int = 0
    forgotten: int = 0
    held: int = 0
    errors: int = 0


class EntryPoller:
    """Polls the records of active investigations for people's entries."""

    def __init__(
        self,
        ctx: ServiceContext,
        *,
        index: PollIndex,
        readers: EntryReaders,
        holds: BackendHolds,
        claimer: EntryClaimer,
    ) -> None:
        self.ctx = ctx
        self.index = index
        self.readers = readers
        self.holds = holds
        self.claimer = claimer

    def poll(self) -> PollReport:
        """One tick: every polling backend's due records, read and taken; a backend that fails is
        logged and counted, and the others are polled all the same."""
        report = PollReport()
        for backend in self.ctx.registry.shared_memory.backends:
            if not backend.polls:
                continue
            try:
                self._poll_backend(backend, report)
            except Exception:
                report.errors += 1
                log.exception("could not poll %s for human entries", backend.name)
        return report

    def _poll_backend(self, backend: WebhookBackend, report: PollReport) -> None:
        now = self.ctx.clock()
        held = self.holds.blocked_until(hold_key(backend.name))
        if held is not None and held > now:
            report.held += 1
            return
        reads = 0
        for record in self.index.polled_records(backend.name, MAX_LISTED):
            if reads >= MAX_READS_PER_TICK:
                break
            if not record.is_due(now, self.ctx.settings.human_poll_seconds):
                continue
            active = self._active(backend, record, report)
            if not active or not self.index.claim_poll(backend.name, record, now):
                continue
            reads += 1
            try:
                self._read(backend, record, active, now, report)
            except WriteError as exc:
                if exc.backend_wide:
                    wait = exc.retry_after if exc.retry_after is not None else DEFAULT_HOLD_SECONDS
                    self.holds.block(hold_key(backend.name), now + timedelta(seconds=wait))
                    log.warning("%s rate-limits the broker: polls wait %.0fs (%s)", backend.name, wait, exc)
                    report.held += 1
                    return
                report.errors += 1
                log.warning(
                    "could not poll %s %s for human entries: %s", backend.name, record.destination, exc
                )

    def _active(
        self, backend: WebhookBackend, record: PolledRecord, report: PollReport
    ) -> list[PolledHandoff]:
        """The record's investigations still running; the closed ones are forgotten (and the record
        with them when none is left)."""
        active: list[PolledHandoff] = []
        closed: list[PolledHandoff] = []
        for handoff in record.handoffs:
            found = self.ctx.store.get(handoff.handoff_id)
            (active if found is not None and found.state.status in ACTIVE else closed).append(handoff)
        if closed:
            ids = [handoff.handoff_id for handoff in closed]
            self.index.forget(backend.name, record.destination, ids, whole=not active)
            report.forgotten += len(ids)
            log.info(
                "no longer polling %s %s for closed %s", backend.name, record.destination, ", ".join(ids)
            )
        return active

    def _read(
        self,
        backend: WebhookBackend,
        record: PolledRecord,
        active: list[PolledHandoff],
        now: datetime,
        report: PollReport,
    ) -> None:
        """Read the record's entries since its cursor and take each, oldest first; the cursor moves past
        those taken (an entry whose queueing failed is read again next time)."""
        report.polled += 1
        cursor = record.start(active)
        fresh = cursor.news(self.readers.entries_since(backend, record.destination, cursor.since))
        taken = []
        try:
            for entry in fresh:
                try:
                    answer, _ = self.claimer.take(backend, entry, now)
                except Unprocessable as problem:
                    # Never readable (an id that cannot be a key): passed, or it would stop the record.
                    log.warning("human entry on %s %s skipped: %s", backend.name, record.destination, problem)
                else:
                    report.queued += answer.get("status") == "queued"
                taken.append(entry)
        finally:
            moved = cursor.after(taken)
            if moved != record.cursor:
                self.index.save_cursor(backend.name, record.destination, moved)
