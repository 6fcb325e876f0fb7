"""Queue work: one entry posted into the threads its message lists, each at most once (a retry finds
the entry's marker in a thread it already reached), retried with back-off while the agents fail."""

from __future__ import annotations

import logging
from typing import Any

from handoff.domain.records import AgentCallError, HandoffRecord
from handoff.domain.registry import Registry
from handoff.domain.shared_memory.human_entries import (
    HANDOFF_ID,
    HUMAN_ENTRY_OP,
    entry_marker,
    human_entry_message,
)
from handoff.ports import AgentGateway, DeliveryQueue, HandoffStore
from handoff.services.policy import backoff_seconds
from handoff.settings import Settings

log = logging.getLogger("handoff")


class EntryPosting:
    """Posts queued human entries into the agents' threads."""

    def __init__(
        self,
        *,
        settings: Settings,
        registry: Registry,
        store: HandoffStore,
        queue: DeliveryQueue,
        agents: AgentGateway,
    ) -> None:
        self.settings = settings
        self.registry = registry
        self.store = store
        self.queue = queue
        self.agents = agents

    def process(self, message: dict[str, Any], dequeue_count: int = 1) -> None:
        """Post one entry into the threads listed in the message, each at most once (marker check)."""
        handoff_id = str(message.get("handoffId", ""))
        entry = message.get("entry")
        record = self.store.get(handoff_id) if HANDOFF_ID.fullmatch(handoff_id) else None
        if record is None or not isinstance(entry, dict):
            log.warning("dropping human entry for unknown handoff: %s", handoff_id)
            return
        text = human_entry_message(record.id, entry, self.settings.base_url)
        needle = entry_marker(record.id, str(entry.get("backend")), str(entry.get("entryId")))
        try:
            posted = self._post(message.get("threads") or [], needle, text)
        except AgentCallError as exc:
            self._after_failure(record, message, entry, exc)
            return
        self.store.append_audit(
            record.id,
            "humanEntryPosted",
            "broker",
            {"backend": entry.get("backend"), "entryId": entry.get("entryId"), "threads": posted},
        )

    def _post(self, threads: list[dict[str, Any]], needle: str, text: str) -> int:
        """Post ``text`` into each thread that does not hold ``needle`` yet; how many were posted."""
        posted = 0
        for thread in threads:
            agent = self.registry.by_name(str(thread["agent"]))
            thread_id = str(thread["threadId"])
            if self.agents.has_message(agent, thread_id, needle):
                continue
            self.agents.post_message(agent, thread_id, text)
            posted += 1
        return posted

    def _after_failure(
        self, record: HandoffRecord, message: dict[str, Any], entry: dict[str, Any], exc: AgentCallError
    ) -> None:
        """Retry a transient failure with back-off until the delivery attempts run out; else give up
        (audited, the message poisoned)."""
        attempt = int(message.get("attempt", 1))
        settings = self.settings
        if exc.transient and attempt < settings.max_delivery_attempts:
            delay = backoff_seconds(
                attempt, exc.retry_after, settings.retry_base_seconds, settings.retry_max_seconds
            )
            self.store.append_audit(
                record.id,
                "retryScheduled",
                "broker",
                {
                    "op": HUMAN_ENTRY_OP,
                    "attempt": attempt,
                    "reason": exc.reason,
                    "delaySeconds": round(delay, 1),
                },
            )
            self.queue.send({**message, "attempt": attempt + 1}, delay)
            return
        self.store.append_audit(
            record.id, "humanEntryFailed", "broker", {"entryId": entry.get("entryId"), "reason": exc.reason}
        )
        self.queue.send_poison({**message, "reason": exc.reason})
