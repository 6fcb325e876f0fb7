"""One entry, queued once per investigation it belongs to, for the threads of that investigation's
agents (a thread two investigations share gets it once), audited and kept for the history."""

from __future__ import annotations

import logging

from handoff.domain import work
from handoff.domain.audit_events import EventType
from handoff.domain.records import HandoffRecord
from handoff.domain.shared_memory.config import WebhookBackend
from handoff.domain.shared_memory.human_entries import HumanEntry, entry_author, history_note
from handoff.ports import HumanNotesIndex
from handoff.services.context import ServiceContext

log = logging.getLogger("handoff")


class EntryFanOut:
    """Queues an entry for the agents of each investigation."""

    def __init__(self, ctx: ServiceContext, notes: HumanNotesIndex | None) -> None:
        self.ctx = ctx
        self.notes = notes

    def fan_out(
        self, backend: WebhookBackend, entry: HumanEntry, records: list[HandoffRecord], override: bool
    ) -> int:
        """Queue ``entry`` for each of ``records``; returns how many investigations it was queued for."""
        payload = entry.payload(override)
        seen: set[tuple[str, str]] = set()
        for record in records:
            threads, skipped = self.threads(record)
            mine = [t for t in threads if (t.agent, t.thread_id) not in seen]
            seen.update((t.agent, t.thread_id) for t in mine)
            self.ctx.queue.send(work.HumanEntry(handoff_id=record.id, threads=mine, entry=payload).wire())
            self.ctx.store.append_audit(
                record.id,
                EventType.HUMAN_OVERRIDE if override else EventType.HUMAN_NOTE,
                entry_author(payload),
                {
                    "backend": backend.name,
                    "entryId": entry.entry_id,
                    "record": entry.destination,
                    "url": entry.url,
                    "threads": len(mine),
                    **({"skipped": skipped} if skipped else {}),
                },
            )
            self._keep(record.id, entry, payload)
        return len(records)

    def threads(self, record: HandoffRecord) -> tuple[list[work.EntryThread], list[str]]:
        """The threads of the agents working ``record``; A2A agents and missing threads are noted."""
        threads: list[work.EntryThread] = []
        skipped: list[str] = []
        for role, name, thread in (
            ("source", record.stored.source_agent, record.stored.request.source.thread_id),
            ("target", record.stored.target_agent, record.state.target_thread_id),
        ):
            agent = self.ctx.registry.find(name)
            if agent is None or agent.is_a2a:
                skipped.append(f"{role} {name}: no thread the broker can post into")
            elif not thread:
                skipped.append(f"{role} {name}: no thread yet")
            else:
                threads.append(work.EntryThread(agent=agent.name, thread_id=thread))
        return threads, skipped

    def _keep(self, handoff_id: str, entry: HumanEntry, payload: work.EntryPayload) -> None:
        """Keep the entry with the investigation for the history (a failure is logged: the agents get
        the entry all the same)."""
        if self.notes is None:
            return
        try:
            self.notes.add_human_note(handoff_id, history_note(payload))
        except Exception:
            log.exception("could not index human entry %s of %s", entry.entry_id, handoff_id)
