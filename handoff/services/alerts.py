"""Use cases of ``POST /api/alerts``: route an Azure Monitor alert to a handoff, once; notes for repeats,
resolutions and storms through the delivery queue.

Dedupe is atomic in storage: the first notification of an alert id inserts the alert's row (insert-if-absent)
and only that request decides where the alert goes; every other notification of the same id finds the row.
Notes into the target's thread are queue work (``alertNote``, ``alertResolved``) run by the delivery worker,
so they are retried like deliveries and never sent in the request path. This module imports no SDK.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any, Literal, TypeVar

from pydantic import BaseModel

from handoff.domain.alerts import (
    Alert,
    StormState,
    alert_context,
    alert_key,
    decide_storm,
    parse_alert,
    refire_note,
    resolved_note,
    select_route,
    storm_context,
    storm_update_note,
)
from handoff.domain.auth import Caller
from handoff.domain.errors import ServiceUnavailable
from handoff.domain.messages import marker
from handoff.domain.models import HandoffRequest, SourceRef, TargetRef, WireModel
from handoff.domain.records import AgentCallError, HandoffRecord
from handoff.domain.registry import AlertRoute
from handoff.ports import AlertStore
from handoff.services.handoffs import HandoffService
from handoff.services.policy import backoff_seconds

log = logging.getLogger("handoff")

ALERT_SOURCE = "azure-monitor"
# A first receiver that has not placed its alert after this long is presumed dead; another takes over.
STALE_CLAIM = timedelta(seconds=30)
PLACEMENT_WAIT_SECONDS = 10.0
# An ``alertNote`` flag left set (its queue message was lost) is cleared after this much extra time.
NOTE_GRACE = timedelta(minutes=10)
NOTE_OPS = ("alertNote", "alertResolved")
ModelT = TypeVar("ModelT", bound=BaseModel)


# ---------------------------------------------------------------- stored records


class AlertRecord(BaseModel):
    """One alert id: where it went and what happened to it since. Inserted once, updated with ETags."""

    alert_id: str
    label: str
    route: str
    target: str
    handoff_id: str | None = None  # None while the first receiver places the alert
    placement: Literal["own", "storm"] | None = None
    condition: Literal["fired", "resolved"] = "fired"
    fired_count: int = 1
    last_fired_at: datetime
    last_fired_reported: str | None = None
    resolved_count: int = 0
    resolved_at: str | None = None
    resolve_noted: int = 0
    resolve_attempted: bool = False
    claimed_at: datetime


class NoteState(BaseModel):
    """Per handoff: the "fired again" / "more related alerts" notes posted into the target's thread."""

    handoff_id: str
    storm: bool = False
    alert_key: str | None = None
    scheduled: bool = False
    scheduled_for: datetime | None = None
    last_note_at: datetime | None = None
    seq: int = 0
    attempted: bool = False
    noted_fired: int = 1
    noted_audit_seq: int = 0


# ---------------------------------------------------------------- wire models


class AlertRouted(WireModel):
    """Where one alert went."""

    route: str
    target: str
    handoff_id: str
    status: Literal["created", "updated", "stormStarted", "stormJoined", "resolved", "alreadyResolved"]
    fired_count: int
    links: dict[str, str]


class AlertReceipt(WireModel):
    """Body of the answer to ``POST /api/alerts``."""

    alert_id: str
    monitor_condition: Literal["Fired", "Resolved"]
    routed: list[AlertRouted]
    detail: str | None = None


def _alert_partition(key: str) -> str:
    return f"alert-{key}"


def _storm_partition(target: str) -> str:
    return f"storm-{target.lower()}"


def _note_partition(handoff_id: str) -> str:
    return f"notes-{handoff_id}"


class AlertService:
    """Turns alerts into handoffs through :class:`HandoffService` and keeps them updated."""

    def __init__(
        self, handoffs: HandoffService, store: AlertStore, sleep: Callable[[float], None] = time.sleep
    ) -> None:
        self.handoffs = handoffs
        self.store = store
        self.sleep = sleep
        self._known_handoffs: set[str] = set()  # handoffs this process has seen stored (skip re-checks)
        self._note_queued_for: dict[str, datetime] = {}  # handoff -> when its queued note is due
        for op in NOTE_OPS:
            handoffs.op_handlers[op] = self.process

    @property
    def _settings(self) -> Any:
        return self.handoffs.settings

    def _now(self) -> datetime:
        return self.handoffs.clock()

    def _audit(self, handoff_id: str, type: str, caller: Caller, details: dict[str, Any]) -> None:
        self.handoffs.store.append_audit(handoff_id, type, caller.describe(), details)

    def _routed(
        self, route: AlertRoute, target: str, handoff_id: str, status: str, count: int
    ) -> AlertRouted:
        base = f"{self._settings.base_url}/api/handoffs/{handoff_id}"
        return AlertRouted(
            route=route.name,
            target=target,
            handoff_id=handoff_id,
            status=status,  # type: ignore[arg-type]
            fired_count=count,
            links={"self": base, "audit": f"{base}/audit"},
        )

    # ------------------------------------------------------------------ receive

    def receive(self, body: bytes, caller: Caller) -> tuple[AlertReceipt, bool]:
        """Handle one notification. Returns the receipt and whether a handoff was created or updated."""
        alert = parse_alert(body)
        if alert.condition == "Resolved":
            return self._resolved(alert, caller)
        route = select_route(self.handoffs.registry.alert_routes, alert)
        if route is None:
            self.store.log(_alert_partition(alert.key), "unrouted", _alert_facts(alert))
            receipt = AlertReceipt(
                alert_id=alert.alert_id, monitor_condition="Fired", routed=[], detail="no alert route matches"
            )
            return receipt, False
        now = self._now()
        target = self.handoffs.registry.by_name(route.target).name
        claim = AlertRecord(
            alert_id=alert.alert_id,
            label=alert.label,
            route=route.name,
            target=target,
            last_fired_at=now,
            last_fired_reported=alert.fired_at,
            claimed_at=now,
        )
        partition = _alert_partition(alert.key)
        known = self.store.read(partition, "alert", AlertRecord, fresh=False)
        if known is None and self.store.insert(partition, "alert", claim):
            routed = self._place(alert, route, claim, caller)
        else:
            routed = self._repeat(alert, caller, known if known and known.handoff_id else None)
        return AlertReceipt(alert_id=alert.alert_id, monitor_condition="Fired", routed=[routed]), True

    def _place(self, alert: Alert, route: AlertRoute, claim: AlertRecord, caller: Caller) -> AlertRouted:
        """The first receiver of an alert id: its own handoff, or the target's storm handoff."""
        now = self._now()
        limits = route.storm(self.handoffs.registry.alert_storm)
        new_storm_id = str(uuid.uuid4())
        outcome: dict[str, Any] = {}

        def storm(state: StormState | None) -> StormState:
            new_state, decision, storm_id = decide_storm(
                state, now, limits.threshold, limits.window_seconds, new_storm_id, alert
            )
            outcome.update(decision=decision, storm_id=storm_id, state=new_state)
            return new_state

        self.store.update(_storm_partition(claim.target), "state", StormState, storm)
        decision = outcome["decision"]
        handoff_id = outcome["storm_id"] or str(uuid.uuid4())
        placement = "own" if decision == "own" else "storm"

        def assign(record: AlertRecord | None) -> AlertRecord:
            assert record is not None
            record.handoff_id, record.placement = handoff_id, placement
            return record

        self.store.update(_alert_partition(alert.key), "alert", AlertRecord, assign)
        facts = {**_alert_facts(alert), "route": route.name}
        if decision == "own":
            _, created = self._ensure_own(alert, route, handoff_id, caller)
            self._audit(handoff_id, "alertFired", caller, facts)
            return self._routed(route, claim.target, handoff_id, "created" if created else "updated", 1)
        state: StormState = outcome["state"]
        self._ensure_storm(state, route, claim.target, handoff_id, caller)
        first = decision == "stormStart"
        self._audit(
            handoff_id, "alertJoinedStorm", caller, {**facts, "first": first, "line": alert.summary_line()}
        )
        if not first:
            self._schedule_note(handoff_id, storm=True, key=None)
        return self._routed(route, claim.target, handoff_id, "stormStarted" if first else "stormJoined", 1)

    def _ensure_own(
        self, alert: Alert, route: AlertRoute, handoff_id: str, caller: Caller
    ) -> tuple[HandoffRecord, bool]:
        request = HandoffRequest(
            source=SourceRef(agent=ALERT_SOURCE),
            target=TargetRef(agent=route.target),
            intent=route.intent,
            context=alert_context(alert, route.name),
            correlation_id=alert.alert_id if len(alert.alert_id) <= 512 else None,
        )
        details = {
            "alertId": alert.alert_id,
            "alertRule": alert.rule,
            "route": route.name,
            "sharedMemory": list(route.shared_memory),
        }
        return self.handoffs.accept_system(request, handoff_id, caller, details)

    def _ensure_storm(
        self, state: StormState, route: AlertRoute, target: str, handoff_id: str, caller: Caller
    ) -> None:
        limits = route.storm(self.handoffs.registry.alert_storm)
        request = HandoffRequest(
            source=SourceRef(agent=ALERT_SOURCE),
            target=TargetRef(agent=target),
            intent=route.intent,
            context=storm_context(
                state.first_alert or {}, target, route.name, limits.threshold, limits.window_seconds
            ),
        )
        details = {"storm": True, "route": route.name, "sharedMemory": list(route.shared_memory)}
        self.handoffs.accept_system(request, handoff_id, caller, details)

    def _placed(self, alert: Alert, caller: Caller) -> AlertRecord:
        """The alert's row once its first receiver has placed it (taking over a receiver that died)."""
        deadline = time.monotonic() + PLACEMENT_WAIT_SECONDS
        partition = _alert_partition(alert.key)
        while True:
            record = self.store.read(partition, "alert", AlertRecord)
            if record is None:  # pragma: no cover - the row is never deleted
                raise ServiceUnavailable("the alert is being recorded; retry", headers={"Retry-After": "5"})
            if record.handoff_id:
                return record
            now = self._now()
            if now - record.claimed_at > STALE_CLAIM:
                taken = self.store.update(partition, "alert", AlertRecord, _take_over(record.claimed_at, now))
                if taken is not None and taken.claimed_at == now and not taken.handoff_id:
                    route = self._route_named(taken.route)
                    if route is not None:
                        self._place(alert, route, taken, caller)
                continue
            if time.monotonic() > deadline:
                raise ServiceUnavailable("the alert is being placed; retry", headers={"Retry-After": "5"})
            self.sleep(0.05)

    def _route_named(self, name: str) -> AlertRoute | None:
        return next((r for r in self.handoffs.registry.alert_routes if r.name == name), None)

    def _repair(self, alert: Alert, record: AlertRecord, caller: Caller) -> None:
        """Recreate the handoff if the first receiver stopped between placing the alert and storing it."""
        assert record.handoff_id is not None
        if record.handoff_id in self._known_handoffs:
            return
        if self.handoffs.store.get(record.handoff_id) is not None:
            if len(self._known_handoffs) > 10_000:
                self._known_handoffs.clear()
            self._known_handoffs.add(record.handoff_id)
            return
        route = self._route_named(record.route)
        if route is None:
            return
        if record.placement == "own":
            self._ensure_own(alert, route, record.handoff_id, caller)
            return
        state = self.store.read(_storm_partition(record.target), "state", StormState)
        if state is not None:
            self._ensure_storm(state, route, record.target, record.handoff_id, caller)

    def _repeat(self, alert: Alert, caller: Caller, placed: AlertRecord | None = None) -> AlertRouted:
        """A further ``Fired`` for a known alert id: count it, audit it, maybe schedule a note."""
        record = placed or self._placed(alert, caller)
        self._repair(alert, record, caller)
        now = self._now()
        reopened = {"value": False}

        def bump(current: AlertRecord | None) -> AlertRecord:
            assert current is not None
            reopened["value"] = current.condition == "resolved"
            current.fired_count += 1
            current.condition = "fired"
            current.last_fired_at = now
            current.last_fired_reported = alert.fired_at
            return current

        updated = self.store.update(_alert_partition(alert.key), "alert", AlertRecord, bump)
        assert updated is not None
        assert updated.handoff_id is not None
        handoff_id = updated.handoff_id
        self._audit(
            handoff_id,
            "alertRefired",
            caller,
            {
                **_alert_facts(alert),
                "route": updated.route,
                "firedCount": updated.fired_count,
                "reopened": reopened["value"],
            },
        )
        storm = updated.placement == "storm"
        self._schedule_note(handoff_id, storm=storm, key=None if storm else alert.key)
        route = self._route_named(updated.route) or AlertRoute(name=updated.route, target=updated.target)
        return self._routed(route, updated.target, handoff_id, "updated", updated.fired_count)

    def _resolved(self, alert: Alert, caller: Caller) -> tuple[AlertReceipt, bool]:
        partition = _alert_partition(alert.key)
        if self.store.read(partition, "alert", AlertRecord) is None:
            self.store.log(partition, "resolvedUnknown", _alert_facts(alert))
            receipt = AlertReceipt(
                alert_id=alert.alert_id,
                monitor_condition="Resolved",
                routed=[],
                detail="this alert was never seen firing; recorded, no investigation opened",
            )
            return receipt, False
        record = self._placed(alert, caller)
        self._repair(alert, record, caller)
        resolved_at = alert.resolved_at or self._now().isoformat()
        changed = {"value": False}

        def resolve(current: AlertRecord | None) -> AlertRecord | None:
            if current is None or current.condition == "resolved":
                return None
            current.condition = "resolved"
            current.resolved_count += 1
            current.resolved_at = resolved_at
            changed["value"] = True
            return current

        updated = self.store.update(partition, "alert", AlertRecord, resolve) or record
        assert updated.handoff_id is not None
        handoff_id = updated.handoff_id
        facts = {**_alert_facts(alert), "route": updated.route, "resolvedAt": resolved_at}
        if changed["value"]:
            # The lifecycle point other features hook into: one alertResolved event per resolution.
            self._audit(handoff_id, "alertResolved", caller, facts)
            # Shared memory writes at this point too (after the event is recorded, never blocking it).
            incident = alert.custom_properties.get("pagerdutyIncidentId")
            self.handoffs.publish_alert_resolved(
                handoff_id, {"pagerdutyIncidentId": str(incident)} if incident else {}
            )
            self.handoffs.queue.send(
                {
                    "op": "alertResolved",
                    "handoffId": handoff_id,
                    "alertKey": alert.key,
                    "seq": updated.resolved_count,
                    "attempt": 1,
                }
            )
        else:
            self._audit(handoff_id, "alertResolvedAgain", caller, facts)
        route = self._route_named(updated.route) or AlertRoute(name=updated.route, target=updated.target)
        status = "resolved" if changed["value"] else "alreadyResolved"
        routed = self._routed(route, updated.target, handoff_id, status, updated.fired_count)
        return AlertReceipt(alert_id=alert.alert_id, monitor_condition="Resolved", routed=[routed]), True

    # ------------------------------------------------------------------ notes (scheduling)

    def _schedule_note(self, handoff_id: str, *, storm: bool, key: str | None) -> None:
        """Queue one note for the handoff unless one is already queued; at most one per interval."""
        now = self._now()
        seconds = (
            self._settings.alerts_storm_update_seconds if storm else self._settings.alerts_refire_note_seconds
        )
        interval = timedelta(seconds=seconds)
        delay: dict[str, float] = {}

        def schedule(note: NoteState | None) -> NoteState | None:
            note = note or NoteState(handoff_id=handoff_id, storm=storm, alert_key=key)
            if note.scheduled and note.scheduled_for and now < note.scheduled_for + NOTE_GRACE:
                return None
            due = max(now, note.last_note_at + interval) if note.last_note_at else now
            note.scheduled, note.scheduled_for = True, due
            delay["seconds"] = (due - now).total_seconds()
            return note

        note = self.store.update(_note_partition(handoff_id), "state", NoteState, schedule)
        if note is not None and note.scheduled and note.scheduled_for:
            if len(self._note_queued_for) > 10_000:
                self._note_queued_for.clear()
            self._note_queued_for[handoff_id] = note.scheduled_for
        if "seconds" in delay:
            self.handoffs.queue.send(
                {"op": "alertNote", "handoffId": handoff_id, "attempt": 1}, delay["seconds"]
            )

    # ------------------------------------------------------------------ notes (queue work)

    def process(self, message: dict[str, Any], dequeue_count: int = 1) -> None:
        """Run an ``alertNote`` or ``alertResolved`` queue message."""
        handoff_id = str(message.get("handoffId", ""))
        record = self.handoffs.store.get(handoff_id) if _is_uuid(handoff_id) else None
        if record is None:
            log.warning("dropping alert note for unknown handoff: %s", message)
            return
        attempt = int(message.get("attempt", 1))
        if not record.state.target_thread_id:
            if record.state.status == "failed":
                self._give_up(record, message, "the handoff was never delivered")
                return
            # Not delivered yet: come back later (delivery itself is retried and ends delivered or failed).
            delay = backoff_seconds(attempt, None, self._settings.retry_base_seconds, 30.0)
            self.handoffs.queue.send({**message, "attempt": attempt + 1}, delay)
            return
        try:
            if message.get("op") == "alertResolved":
                self._post_resolved(record, message)
            else:
                self._post_note(record)
        except AgentCallError as exc:
            if exc.transient and attempt < self._settings.max_delivery_attempts:
                delay = backoff_seconds(
                    attempt,
                    exc.retry_after,
                    self._settings.retry_base_seconds,
                    self._settings.retry_max_seconds,
                )
                self.handoffs.store.append_audit(
                    handoff_id,
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
            self.store.update(_note_partition(record.id), "state", NoteState, _unschedule)
        self.handoffs.store.append_audit(
            record.id, "alertNoteFailed", "broker", {"op": message.get("op"), "reason": reason}
        )

    def _post(
        self, record: HandoffRecord, step: str, text: str, attempted: bool, mark: Callable[[], None]
    ) -> None:
        """Post ``text`` into the target thread unless an earlier attempt already did (marker check)."""
        target = self.handoffs.registry.by_name(record.stored.target_agent)
        thread_id = record.state.target_thread_id
        assert thread_id is not None
        if attempted and self.handoffs.agents.has_message(target, thread_id, marker(record.id, step)):
            return
        mark()
        self.handoffs.agents.post_message(target, thread_id, text)

    def _post_note(self, record: HandoffRecord) -> None:
        partition = _note_partition(record.id)
        note = self.store.read(partition, "state", NoteState)
        if note is None or not note.scheduled:
            return
        seq = note.seq + 1
        if note.storm:
            events = self.handoffs.store.list_audit(record.id)
            fresh = [e for e in events if e.seq > note.noted_audit_seq]
            joins = [e for e in fresh if e.type == "alertJoinedStorm" and not e.details.get("first")]
            repeats = sum(1 for e in fresh if e.type == "alertRefired")
            total = sum(1 for e in events if e.type == "alertJoinedStorm")
            noted = {"noted_audit_seq": max((e.seq for e in events), default=note.noted_audit_seq)}
            if not joins and not repeats:
                self.store.update(partition, "state", NoteState, _unschedule)
                return
            lines = [str(e.details.get("line", e.details.get("alertId"))) for e in joins]
            text = storm_update_note(record.id, lines, repeats, total, seq)
            kind = "stormUpdate"
        else:
            alert = self.store.read(_alert_partition(note.alert_key or ""), "alert", AlertRecord)
            if alert is None or alert.fired_count <= note.noted_fired:
                self.store.update(partition, "state", NoteState, _unschedule)
                return
            text = refire_note(
                record.id, alert.label, alert.alert_id, alert.fired_count - 1, alert.last_fired_reported, seq
            )
            noted = {"noted_fired": alert.fired_count}
            kind = "firedAgain"

        def mark() -> None:
            self.store.update(partition, "state", NoteState, lambda n: _set(n, attempted=True))

        self._post(record, f"alert-note:{seq}", text, note.attempted, mark)
        now = self._now()
        self.store.update(
            partition,
            "state",
            NoteState,
            lambda n: _set(n, seq=seq, last_note_at=now, scheduled=False, attempted=False, **noted),
        )
        self.handoffs.store.append_audit(record.id, "alertNotePosted", "broker", {"seq": seq, "kind": kind})

    def _post_resolved(self, record: HandoffRecord, message: dict[str, Any]) -> None:
        key = str(message.get("alertKey", ""))
        seq = int(message.get("seq", 1))
        partition = _alert_partition(key)
        alert = self.store.read(partition, "alert", AlertRecord)
        if alert is None or alert.resolve_noted >= seq:
            return
        text = resolved_note(
            record.id, alert.label, alert.alert_id, alert.resolved_at or "an unknown time", seq
        )

        def mark() -> None:
            self.store.update(partition, "alert", AlertRecord, lambda a: _set(a, resolve_attempted=True))

        step = f"alert-resolved:{alert_key(alert.alert_id)[:12]}:{seq}"
        self._post(record, step, text, alert.resolve_attempted, mark)
        self.store.update(
            partition, "alert", AlertRecord, lambda a: _set(a, resolve_noted=seq, resolve_attempted=False)
        )
        self.handoffs.store.append_audit(
            record.id, "alertResolvedPosted", "broker", {"alertId": alert.alert_id, "seq": seq}
        )


def _set(doc: ModelT | None, **values: Any) -> ModelT | None:
    if doc is None:
        return None
    for name, value in values.items():
        setattr(doc, name, value)
    return doc


def _take_over(seen: datetime, now: datetime) -> Callable[[AlertRecord | None], AlertRecord | None]:
    """Claim a placement left unfinished since ``seen`` (only if nobody else claimed it meanwhile)."""

    def take(current: AlertRecord | None) -> AlertRecord | None:
        if current is None or current.handoff_id or current.claimed_at != seen:
            return None
        current.claimed_at = now
        return current

    return take


def _unschedule(note: NoteState | None) -> NoteState | None:
    return _set(note, scheduled=False, attempted=False)


def _alert_facts(alert: Alert) -> dict[str, Any]:
    """What the audit records about one notification (no payload bodies, no secrets)."""
    return {
        "alertId": alert.alert_id,
        "monitorCondition": alert.condition,
        "alertRule": alert.rule,
        "severity": alert.severity,
        "monitoringService": alert.monitoring_service,
        "firedDateTime": alert.fired_at,
        "receivedAt": datetime.now(UTC).isoformat(),
    }


def _is_uuid(value: str) -> bool:
    try:
        uuid.UUID(value)
    except ValueError:
        return False
    return True
