"""Notes about an alert handoff in the target agent's thread: "fired again", "N more related alerts"
(storms) and "resolved at ...".

They are queue work on the delivery queue (``alertNote``, ``alertResolved``), run by the delivery
worker: retried like deliveries, waiting until the target thread exists, never sent in a request. At
most one ``alertNote`` is queued per handoff at a time, and notes are spaced by an interval.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any, Protocol

from handoff.domain.alerts.notes import refire_note, resolved_note, storm_update_note
from handoff.domain.alerts.parsing import alert_key
from handoff.domain.alerts.records import (
    ALERT_ROW,
    STATE_ROW,
    AlertRecord,
    NoteState,
    alert_partition,
    note_partition,
    with_values,
)
from handoff.domain.messages import marker
from handoff.domain.records import AgentCallError, HandoffRecord
from handoff.domain.registry import Registry
from handoff.ports import AgentGateway, AlertStore, DeliveryQueue, HandoffStore
from handoff.services.policy import backoff_seconds
from handoff.settings import Settings

log = logging.getLogger("handoff")

NOTE_OPS = ("alertNote", "alertResolved")
# An ``alertNote`` flag left set (its queue message was lost) is cleared after this much extra time.
NOTE_GRACE = timedelta(minutes=10)
# How long an undelivered handoff's note waits at most between looks (delivery ends delivered or failed).
UNDELIVERED_WAIT_SECONDS = 30.0


class NoteHandoffs(Protocol):
    """What the alert notes use of the handoff use cases: their storage, queue, agents, registry,
    settings and clock."""

    @property
    def store(self) -> HandoffStore: ...

    @property
    def queue(self) -> DeliveryQueue: ...

    @property
    def agents(self) -> AgentGateway: ...

    @property
    def registry(self) -> Registry: ...

    @property
    def settings(self) -> Settings: ...

    @property
    def clock(self) -> Callable[[], datetime]: ...


class AlertNotes:
    """Queues the notes of alert handoffs and runs their queue messages."""

    def __init__(self, handoffs: NoteHandoffs, store: AlertStore) -> None:
        self.handoffs = handoffs
        self.store = store

    # ------------------------------------------------------------------ queueing

    def schedule(self, handoff_id: str, *, storm: bool, key: str | None) -> None:
        """Queue one note for the handoff unless one is already queued; at most one per interval.
        ``key`` is the alert's key for a "fired again" note (None for a storm update)."""
        now = self.handoffs.clock()
        settings = self.handoffs.settings
        seconds = settings.alerts_storm_update_seconds if storm else settings.alerts_refire_note_seconds
        interval = timedelta(seconds=seconds)
        delay: list[float] = []

        def schedule(note: NoteState | None) -> NoteState | None:
            note = note or NoteState(handoff_id=handoff_id, storm=storm, alert_key=key)
            if note.scheduled and note.scheduled_for and now < note.scheduled_for + NOTE_GRACE:
                return None
            due = max(now, note.last_note_at + interval) if note.last_note_at else now
            note.scheduled, note.scheduled_for = True, due
            delay[:] = [(due - now).total_seconds()]
            return note

        self.store.update(note_partition(handoff_id), STATE_ROW, NoteState, schedule)
        if delay:
            self.handoffs.queue.send({"op": "alertNote", "handoffId": handoff_id, "attempt": 1}, delay[0])

    def queue_resolved(self, handoff_id: str, key: str, seq: int) -> None:
        """Queue the "resolved at" note of resolution ``seq`` of the alert with key ``key``."""
        self.handoffs.queue.send(
            {"op": "alertResolved", "handoffId": handoff_id, "alertKey": key, "seq": seq, "attempt": 1}
        )

    # ------------------------------------------------------------------ queue work

    def process(self, message: dict[str, Any], dequeue_count: int = 1) -> None:
        """Run an ``alertNote`` or ``alertResolved`` queue message."""
        handoff_id = str(message.get("handoffId", ""))
        record = self.handoffs.store.get(handoff_id) if _is_uuid(handoff_id) else None
        if record is None:
            log.warning("dropping alert note for unknown handoff: %s", message)
            return
        attempt = int(message.get("attempt", 1))
        thread_id = record.state.target_thread_id
        if not thread_id:
            self._undelivered(record, message, attempt)
            return
        try:
            if message.get("op") == "alertResolved":
                self._post_resolved(record, thread_id, message)
            else:
                self._post_note(record, thread_id)
        except AgentCallError as exc:
            self._failed(record, message, attempt, exc)

    def _undelivered(self, record: HandoffRecord, message: dict[str, Any], attempt: int) -> None:
        """The handoff has no target thread (yet): give up when its delivery failed, else look again."""
        if record.state.status == "failed":
            self._give_up(record, message, "the handoff was never delivered")
            return
        settings = self.handoffs.settings
        delay = backoff_seconds(attempt, None, settings.retry_base_seconds, UNDELIVERED_WAIT_SECONDS)
        self.handoffs.queue.send({**message, "attempt": attempt + 1}, delay)

    def _failed(
        self, record: HandoffRecord, message: dict[str, Any], attempt: int, exc: AgentCallError
    ) -> None:
        """Retry a transient failure later (audited); give up on anything else or after the last attempt."""
        settings = self.handoffs.settings
        if exc.transient and attempt < settings.max_delivery_attempts:
            delay = backoff_seconds(
                attempt, exc.retry_after, settings.retry_base_seconds, settings.retry_max_seconds
            )
            self.handoffs.store.append_audit(
                record.id,
                "retryScheduled",
                "broker",
                {
                    "op": message.get("op"),
                    "attempt": attempt,
                    "reason": exc.reason,
                    "delaySeconds": round(delay, 1),
                },
            )
            self.handoffs.queue.send({**message, "attempt": attempt + 1}, delay)
            return
        self._give_up(record, message, exc.reason)
        self.handoffs.queue.send_poison({**message, "reason": exc.reason})

    def _give_up(self, record: HandoffRecord, message: dict[str, Any], reason: str) -> None:
        if message.get("op") == "alertNote":
            self.store.update(note_partition(record.id), STATE_ROW, NoteState, _unschedule)
        self.handoffs.store.append_audit(
            record.id, "alertNoteFailed", "broker", {"op": message.get("op"), "reason": reason}
        )

    # ------------------------------------------------------------------ posting

    def _post(
        self,
        record: HandoffRecord,
        thread_id: str,
        step: str,
        text: str,
        attempted: bool,
        mark: Callable[[], None],
    ) -> None:
        """Post ``text`` into the target thread unless an earlier attempt already did (marker check)."""
        target = self.handoffs.registry.by_name(record.stored.target_agent)
        if attempted and self.handoffs.agents.has_message(target, thread_id, marker(record.id, step)):
            return
        mark()
        self.handoffs.agents.post_message(target, thread_id, text)

    def _post_note(self, record: HandoffRecord, thread_id: str) -> None:
        """Post the scheduled "fired again" or storm update note, if there is anything new to say."""
        partition = note_partition(record.id)
        note = self.store.read(partition, STATE_ROW, NoteState)
        if note is None or not note.scheduled:
            return
        seq = note.seq + 1
        news = self._storm_news(record, note, seq) if note.storm else self._refire_news(record, note, seq)
        if news is None:
            self.store.update(partition, STATE_ROW, NoteState, _unschedule)
            return
        text, kind, noted = news

        def mark() -> None:
            self.store.update(partition, STATE_ROW, NoteState, lambda n: with_values(n, attempted=True))

        self._post(record, thread_id, f"alert-note:{seq}", text, note.attempted, mark)
        now = self.handoffs.clock()
        self.store.update(
            partition,
            STATE_ROW,
            NoteState,
            lambda n: with_values(n, seq=seq, last_note_at=now, scheduled=False, attempted=False, **noted),
        )
        self.handoffs.store.append_audit(record.id, "alertNotePosted", "broker", {"seq": seq, "kind": kind})

    def _storm_news(
        self, record: HandoffRecord, note: NoteState, seq: int
    ) -> tuple[str, str, dict[str, Any]] | None:
        """The storm update: distinct alerts that joined, and repeats, since the last update."""
        events = self.handoffs.store.list_audit(record.id)
        fresh = [e for e in events if e.seq > note.noted_audit_seq]
        joins = [e for e in fresh if e.type == "alertJoinedStorm" and not e.details.get("first")]
        repeats = sum(1 for e in fresh if e.type == "alertRefired")
        if not joins and not repeats:
            return None
        total = sum(1 for e in events if e.type == "alertJoinedStorm")
        lines = [str(e.details.get("line", e.details.get("alertId"))) for e in joins]
        text = storm_update_note(record.id, lines, repeats, total, seq)
        noted = {"noted_audit_seq": max((e.seq for e in events), default=note.noted_audit_seq)}
        return text, "stormUpdate", noted

    def _refire_news(
        self, record: HandoffRecord, note: NoteState, seq: int
    ) -> tuple[str, str, dict[str, Any]] | None:
        """The "fired again" note: how often the alert fired since the last note."""
        alert = self.store.read(alert_partition(note.alert_key or ""), ALERT_ROW, AlertRecord)
        if alert is None or alert.fired_count <= note.noted_fired:
            return None
        text = refire_note(
            record.id, alert.label, alert.alert_id, alert.fired_count - 1, alert.last_fired_reported, seq
        )
        return text, "firedAgain", {"noted_fired": alert.fired_count}

    def _post_resolved(self, record: HandoffRecord, thread_id: str, message: dict[str, Any]) -> None:
        """Post "resolved at" for resolution ``seq`` of the alert, once."""
        partition = alert_partition(str(message.get("alertKey", "")))
        seq = int(message.get("seq", 1))
        alert = self.store.read(partition, ALERT_ROW, AlertRecord)
        if alert is None or alert.resolve_noted >= seq:
            return
        text = resolved_note(
            record.id, alert.label, alert.alert_id, alert.resolved_at or "an unknown time", seq
        )

        def mark() -> None:
            self.store.update(
                partition, ALERT_ROW, AlertRecord, lambda a: with_values(a, resolve_attempted=True)
            )

        step = f"alert-resolved:{alert_key(alert.alert_id)[:12]}:{seq}"
        self._post(record, thread_id, step, text, alert.resolve_attempted, mark)
        self.store.update(
            partition,
            ALERT_ROW,
            AlertRecord,
            lambda a: with_values(a, resolve_noted=seq, resolve_attempted=False),
        )
        self.handoffs.store.append_audit(
            record.id, "alertResolvedPosted", "broker", {"alertId": alert.alert_id, "seq": seq}
        )


def _unschedule(note: NoteState | None) -> NoteState | None:
    return with_values(note, scheduled=False, attempted=False)


def _is_uuid(value: str) -> bool:
    try:
        uuid.UUID(value)
    except ValueError:
        return False
    return True
