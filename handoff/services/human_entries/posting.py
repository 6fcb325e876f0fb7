"""Queue work: one entry posted into the threads its message lists, each at most once (a retry finds
the entry's marker in a thread it already reached), retried with back-off while the agents fail."""

from __future__ import annotations

import logging

from handoff.domain.audit_events import Actor, EventType
from handoff.domain.errors import NotFound
from handoff.domain.records import AgentCallError
from handoff.domain.shared_memory.human_entries import entry_marker, human_entry_message
from handoff.domain.work import EntryPayload, EntryThread, HumanEntry
from handoff.services.context import ServiceContext
from handoff.services.policy import post_once, retry_or_give_up

log = logging.getLogger("handoff")


class EntryPosting:
    """Posts queued human entries into the agents' threads."""

    def __init__(self, ctx: ServiceContext) -> None:
        self.ctx = ctx

    def process(self, message: HumanEntry, dequeue_count: int = 1) -> None:
        """Post one entry into the threads listed in the message, each at most once (marker check); an
        agent failure goes through the one retry-or-give-up rule."""
        try:
            record = self.ctx.get_record(message.handoff_id)
        except NotFound:
            log.warning("dropping human entry for unknown handoff: %s", message.handoff_id)
            return
        entry = message.entry
        text = human_entry_message(
            record.id, entry.model_dump(mode="json", by_alias=True), self.ctx.settings.base_url
        )
        needle = entry_marker(record.id, entry.backend, entry.entry_id)
        try:
            posted = self._post(message.threads, needle, text)
        except AgentCallError as exc:
            retry_or_give_up(
                self.ctx,
                message,
                exc,
                count_attempts=False,
                give_up=lambda reason: self._give_up(record.id, entry, reason),
            )
            return
        self.ctx.store.append_audit(
            record.id,
            EventType.HUMAN_ENTRY_POSTED,
            Actor.BROKER,
            {"backend": entry.backend, "entryId": entry.entry_id, "threads": posted},
        )

    def _post(self, threads: list[EntryThread], needle: str, text: str) -> int:
        """Post ``text`` into each thread that does not hold ``needle`` yet; how many were posted."""
        posted = 0
        for thread in threads:
            agent = self.ctx.registry.by_name(thread.agent)
            if not post_once(self.ctx.agents, agent, thread.thread_id, needle, text).recovered:
                posted += 1
        return posted

    def _give_up(self, handoff_id: str, entry: EntryPayload, reason: str) -> None:
        details = {"entryId": entry.entry_id, "reason": reason}
        self.ctx.store.append_audit(handoff_id, EventType.HUMAN_ENTRY_FAILED, Actor.BROKER, details)
