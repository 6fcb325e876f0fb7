"""Notes about an alert handoff in the target agent's thread: "fired again", "N more related alerts"
(storms) and "resolved at ...".

They are queue work on the delivery queue (``alertNote``, ``alertResolved``), run by the delivery
worker: retried like deliveries, waiting until the target thread exists, never sent in a request. At
most one ``alertNote`` is queued per handoff at a time, and notes are spaced by an interval.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import timedelta
from typing import Any

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
from handoff.domain.audit_events import Actor, EventType
from handoff.domain.errors import NotFound
from handoff.domain.messages import marker
from handoff.domain.records import AgentCallError, HandoffRecord
from handoff.domain.work import AlertNote, AlertResolved
from handoff.ports import AlertStore
from handoff.services.context import ServiceContext
from handoff.services.policy import backoff_seconds, post_once, retry_or_give_up

log = logging.getLogger("handoff")

NoteWork = AlertNote | AlertResolved
"""The queue work of alert notes."""
# An ``alertNote`` flag left set (its queue message was lost) is cleared after this much extra time.
NOTE_GRACE = timedelta(minutes=10)
# How long an undelivered handoff's note waits at most between looks (delivery ends delivered or failed).
UNDELIVERED_WAIT_SECONDS = 30.0


class AlertNotes:
    """Queues the notes of alert handoffs and runs their queue messages."""

    def __init__(self, ctx: ServiceContext, store: AlertStore) -> None:
        self.ctx = ctx
        self.store = store

    # ------------------------------------------------------------------ queueing

    def schedule(self, handoff_id: str, *, storm: bool, key: str | None) -> None:
        """Queue one note for the handoff unless one is already queued; at most one per interval.
        ``key`` is the alert's key for a "fired again" note (None for a storm update)."""
        now = self.ctx.clock()
        settings = self.ctx.settings
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
            self.ctx.queue.send(AlertNote(handoff_id=handoff_id).wire(), delay[0])

    def queue_resolved(self, handoff_id: str, key: str, seq: int) -> None:
        """Queue the "resolved at" note of resolution ``seq`` of the alert with key ``key``."""
        self.ctx.queue.send(AlertResolved(handoff_id=handoff_id, alert_key=key, seq=seq).wire())

    # ------------------------------------------------------------------ queue work

    def process(self, message: NoteWork, dequeue_count: int = 1) -> None:
        """Run an ``alertNote`` or ``alertResolved`` queue message; an agent failure goes through the
        one retry-or-give-up rule."""
        try:
            record = self.ctx.get_record(message.handoff_id)
        except NotFound:
            log.warning("dropping alert note for unknown handoff: %s", message.wire())
            return
        thread_id = record.state.target_thread_id
        if not thread_id:
            self._undelivered(record, message)
            return
        try:
            if isinstance(message, AlertResolved):
                self._post_resolved(record, thread_id, message)
            else:
                self._post_note(record, thread_id)
        except AgentCallError as exc:
            retry_or_give_up(
                self.ctx, message, exc, give_up=lambda reason: self._give_up(record, message, reason)
            )

    def _undelivered(self, record: HandoffRecord, message: NoteWork) -> None:
        """The handoff has no target thread (yet): give up when its delivery failed, else look again."""
        if record.state.status == "failed":
            self._give_up(record, message, "the handoff was never delivered")
            return
        settings = self.ctx.settings
        delay = backoff_seconds(message.attempt, None, settings.retry_base_seconds, UNDELIVERED_WAIT_SECONDS)
        self.ctx.queue.send(message.next_attempt().wire(), delay)

    def _give_up(self, record: HandoffRecord, message: NoteWork, reason: str) -> None:
        if isinstance(message, AlertNote):
            self.store.update(note_partition(record.id), STATE_ROW, NoteState, _unschedule)
        self.ctx.store.append_audit(
            record.id, EventType.ALERT_NOTE_FAILED, Actor.BROKER, {"op": message.op, "reason": reason}
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
        target = self.ctx.registry.by_name(record.stored.target_agent)
        needle = marker(record.id, step)
        post_once(self.ctx.agents, target, thread_id, needle, text, look=attempted, before_post=mark)

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
        now = self.ctx.clock()
        self.store.update(
            partition,
            STATE_ROW,
            NoteState,
            lambda n: with_values(n, seq=seq, last_note_at=now, scheduled=False, attempted=False, **noted),
        )
        self.ctx.store.append_audit(
            record.id, EventType.ALERT_NOTE_POSTED, Actor.BROKER, {"seq": seq, "kind": kind}
        )

    def _storm_news(
        self, record: HandoffRecord, note: NoteState, seq: int
    ) -> tuple[str, str, dict[str, Any]] | None:
        """The storm update: distinct alerts that joined, and repeats, since the last update."""
        events = self.ctx.store.list_audit(record.id)
        fresh = [e for e in events if e.seq > note.noted_audit_seq]
        joins = [e for e in fresh if e.type == EventType.ALERT_JOINED_STORM and not e.details.get("first")]
        repeats = sum(1 for e in fresh if e.type == EventType.ALERT_REFIRED)
        if not joins and not repeats:
            return None
        total = sum(1 for e in events if e.type == EventType.ALERT_JOINED_STORM)
        text = storm_update_note(record.id, [e.details for e in joins], repeats, total, seq)
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

    def _post_resolved(self, record: HandoffRecord, thread_id: str, message: AlertResolved) -> None:
        """Post "resolved at" for resolution ``seq`` of the alert, once."""
        partition = alert_partition(message.alert_key)
        seq = message.seq
        alert = self.store.read(partition, ALERT_ROW, AlertRecord)
        if alert is None or alert.resolve_noted >= seq:
            return
        text = resolved_note(record.id, alert.label, alert.alert_id, alert.resolved_at, seq)

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
        self.ctx.store.append_audit(
            record.id, EventType.ALERT_RESOLVED_POSTED, Actor.BROKER, {"alertId": alert.alert_id, "seq": seq}
        )


def _unschedule(note: NoteState | None) -> NoteState | None:
    return with_values(note, scheduled=False, attempted=False)
