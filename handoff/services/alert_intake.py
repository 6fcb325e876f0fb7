"""Use cases of ``POST /api/alerts``: route an Azure Monitor alert to a handoff, once; count repeats,
fold storms, record resolutions.

Dedupe is atomic in storage: the first notification of an alert id inserts the alert's row
(insert-if-absent) and only that request opens the handoff; every other notification of the id counts
as a repeat. Where the alert goes (its own handoff or the target's storm handoff) is decided once per
alert id in the target's storm state and then recorded on the alert's row. A notification that finds
the row not yet placed, because its first receiver is still at work or stopped, places it itself: it
gets the same decision, so no request ever waits for another. Notes into the target's thread are queued
through :class:`~handoff.services.alert_notes.AlertNotes`. This module imports no SDK.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any, Protocol

from handoff.domain.alerts.parsing import Alert, parse_alert
from handoff.domain.alerts.receipt import AlertReceipt, AlertRouted, RoutedStatus
from handoff.domain.alerts.records import (
    ALERT_ROW,
    STATE_ROW,
    AlertRecord,
    alert_partition,
    storm_partition,
)
from handoff.domain.alerts.requests import alert_handoff, notification_facts, storm_facts, storm_handoff
from handoff.domain.alerts.routing import select_route
from handoff.domain.alerts.storms import Placement, StormState, place_alert
from handoff.domain.audit_events import EventType
from handoff.domain.auth import Caller
from handoff.domain.errors import ServiceUnavailable
from handoff.domain.models import HandoffRequest
from handoff.domain.records import HandoffRecord
from handoff.domain.registry import AlertRoute
from handoff.domain.shared_memory.destinations import PAGERDUTY_INCIDENT_PROPERTY, pagerduty_incident_id
from handoff.ports import AlertStore
from handoff.services.alert_notes import AlertNotes
from handoff.services.context import ServiceContext
from handoff.services.lifecycle import publish_alert_resolved

KNOWN_HANDOFFS_KEPT = 10_000  # handoff ids this process has seen stored, so repeats skip the check


class SystemIntake(Protocol):
    """What the alert intake uses of :class:`~handoff.services.intake.Intake`: starting the handoffs
    the broker opens itself."""

    def accept_system(
        self, request: HandoffRequest, handoff_id: str, caller: Caller, details: dict[str, Any] | None = None
    ) -> tuple[HandoffRecord, bool]:
        """Store and enqueue a handoff the broker starts itself (idempotent by ``handoff_id``)."""
        ...


@dataclass(frozen=True)
class Placed:
    """An alert row with its placement recorded, as one request found it."""

    record: AlertRecord
    handoff_id: str
    placement: Placement  # the decision this request found (the row keeps the first one recorded)
    state: StormState | None  # the target's storm state after the decision


class AlertIntake:
    """Turns alert notifications into handoffs (through ``intake``) and keeps them updated."""

    def __init__(
        self, ctx: ServiceContext, intake: SystemIntake, store: AlertStore, notes: AlertNotes
    ) -> None:
        self.ctx = ctx
        self.intake = intake
        self.store = store
        self.notes = notes
        self._known_handoffs: set[str] = set()

    def receive(self, body: bytes, caller: Caller) -> tuple[AlertReceipt, bool]:
        """Handle one notification. Returns the receipt and whether a handoff was created or updated."""
        alert = parse_alert(body)
        if alert.condition == "Resolved":
            return self._resolved(alert, caller)
        route = select_route(self.ctx.registry.alert_routes, alert)
        if route is None:
            self.store.log(alert_partition(alert.key), EventType.ALERT_UNROUTED, self._facts(alert))
            receipt = AlertReceipt(
                alert_id=alert.alert_id, monitor_condition="Fired", routed=[], detail="no alert route matches"
            )
            return receipt, False
        routed = self._fired(alert, route, caller)
        return AlertReceipt(alert_id=alert.alert_id, monitor_condition="Fired", routed=[routed]), True

    # ------------------------------------------------------------------ fired

    def _fired(self, alert: Alert, route: AlertRoute, caller: Caller) -> AlertRouted:
        partition = alert_partition(alert.key)
        # The row's placement never changes once set, so this process's latest copy will do.
        known = self.store.read(partition, ALERT_ROW, AlertRecord, fresh=False)
        if known is not None and known.handoff_id:
            return self._repeat(alert, known, known.handoff_id, caller)
        claim = AlertRecord(
            alert_id=alert.alert_id,
            label=alert.label,
            route=route.name,
            target=self.ctx.registry.by_name(route.target).name,
            last_fired_reported=alert.fired_at,
        )
        if known is None and self.store.insert(partition, ALERT_ROW, claim):
            return self._opened(alert, route, self._place(alert, claim), caller)
        record = self._row(alert)
        if record.handoff_id:
            return self._repeat(alert, record, record.handoff_id, caller)
        placed = self._place(alert, record)
        return self._repeat(alert, placed.record, placed.handoff_id, caller)

    def _place(self, alert: Alert, record: AlertRecord) -> Placed:
        """Decide (or recall) where the alert goes and record it on the alert's row, unless a receiver
        did already."""
        route = self._route_of(record)
        limits = route.storm(self.ctx.registry.alert_storm)
        now = self.ctx.clock()
        new_ids = (str(uuid.uuid4()), str(uuid.uuid4()))
        found: list[Placement] = []

        def place(state: StormState | None) -> StormState | None:
            new_state, placement = place_alert(state, alert, now, limits, new_ids)
            found[:] = [placement]
            return new_state

        state = self.store.update(storm_partition(record.target), STATE_ROW, StormState, place)
        placement = found[0]

        def assign(current: AlertRecord | None) -> AlertRecord | None:
            if current is None or current.handoff_id:
                return None
            current.handoff_id = placement.handoff_id
            current.placement = "own" if placement.decision == "own" else "storm"
            return current

        placed = self.store.update(alert_partition(alert.key), ALERT_ROW, AlertRecord, assign)
        if placed is None or not placed.handoff_id:  # the row is never deleted
            raise _row_missing()
        return Placed(placed, placed.handoff_id, placement, state)

    def _opened(self, alert: Alert, route: AlertRoute, placed: Placed, caller: Caller) -> AlertRouted:
        """The first notification of an alert id: open its handoff, or join (or start) the storm's."""
        handoff_id, target = placed.handoff_id, placed.record.target
        facts = {**self._facts(alert), "route": route.name}
        if placed.record.placement == "own":
            self._ensure_own(alert, route, handoff_id, caller)
            self._audit(handoff_id, EventType.ALERT_FIRED, caller, facts)
            # Created by this notification, even when a concurrent duplicate stored the handoff first.
            return self._routed(route.name, target, handoff_id, "created", 1)
        self._ensure_storm(placed.state, route, target, handoff_id, caller)
        first = placed.placement.decision == "stormStart" and placed.placement.handoff_id == handoff_id
        self._audit(
            handoff_id,
            EventType.ALERT_JOINED_STORM,
            caller,
            {**facts, "first": first, **storm_facts(alert)},
        )
        if not first:
            self.notes.schedule(handoff_id, storm=True, key=None)
        return self._routed(route.name, target, handoff_id, "stormStarted" if first else "stormJoined", 1)

    def _repeat(self, alert: Alert, record: AlertRecord, handoff_id: str, caller: Caller) -> AlertRouted:
        """A further ``Fired`` for a placed alert id: count it, audit it, maybe schedule a note."""
        self._repair(alert, record, handoff_id, caller)
        reopened: list[bool] = []

        def bump(current: AlertRecord | None) -> AlertRecord | None:
            if current is None:
                return None
            reopened[:] = [current.condition == "resolved"]
            current.fired_count += 1
            current.condition = "fired"
            current.last_fired_reported = alert.fired_at
            return current

        updated = self.store.update(alert_partition(alert.key), ALERT_ROW, AlertRecord, bump)
        if updated is None:  # the row is never deleted
            raise _row_missing()
        facts = {
            **self._facts(alert),
            "route": updated.route,
            "firedCount": updated.fired_count,
            "reopened": bool(reopened and reopened[0]),
        }
        self._audit(handoff_id, EventType.ALERT_REFIRED, caller, facts)
        storm = updated.placement == "storm"
        self.notes.schedule(handoff_id, storm=storm, key=None if storm else alert.key)
        return self._routed(updated.route, updated.target, handoff_id, "updated", updated.fired_count)

    # ------------------------------------------------------------------ resolved

    def _resolved(self, alert: Alert, caller: Caller) -> tuple[AlertReceipt, bool]:
        partition = alert_partition(alert.key)
        record = self.store.read(partition, ALERT_ROW, AlertRecord)
        if record is None:
            self.store.log(partition, EventType.ALERT_RESOLVED_UNKNOWN, self._facts(alert))
            receipt = AlertReceipt(
                alert_id=alert.alert_id,
                monitor_condition="Resolved",
                routed=[],
                detail="this alert was never seen firing; recorded, no investigation opened",
            )
            return receipt, False
        if record.handoff_id:
            handoff_id = record.handoff_id
        else:
            placed = self._place(alert, record)
            record, handoff_id = placed.record, placed.handoff_id
        self._repair(alert, record, handoff_id, caller)
        resolved_at = alert.resolved_at or self.ctx.clock().isoformat()
        changed: list[bool] = []

        def resolve(current: AlertRecord | None) -> AlertRecord | None:
            if current is None or current.condition == "resolved":
                return None
            current.condition = "resolved"
            current.resolved_count += 1
            current.resolved_at = resolved_at
            changed[:] = [True]
            return current

        updated = self.store.update(partition, ALERT_ROW, AlertRecord, resolve) or record
        facts = {**self._facts(alert), "route": updated.route, "resolvedAt": resolved_at}
        if changed:
            # The lifecycle point other features hook into: one alertResolved event per resolution.
            self._audit(handoff_id, EventType.ALERT_RESOLVED, caller, facts)
            # Shared memory writes at this point too (after the event is recorded, never blocking it).
            # Only an id of PagerDuty's shape names an incident: anything else is the sender's text, and
            # these details travel in queue messages and write states as they are.
            given = alert.custom_properties.get(PAGERDUTY_INCIDENT_PROPERTY)
            incident = pagerduty_incident_id(given) if isinstance(given, str) else None
            named = {PAGERDUTY_INCIDENT_PROPERTY: incident} if incident else {}
            publish_alert_resolved(self.ctx, handoff_id, named)
            self.notes.queue_resolved(handoff_id, alert.key, updated.resolved_count)
        else:
            self._audit(handoff_id, EventType.ALERT_RESOLVED_AGAIN, caller, facts)
        status: RoutedStatus = "resolved" if changed else "alreadyResolved"
        routed = self._routed(updated.route, updated.target, handoff_id, status, updated.fired_count)
        return AlertReceipt(alert_id=alert.alert_id, monitor_condition="Resolved", routed=[routed]), True

    # ------------------------------------------------------------------ handoffs

    def _ensure_own(self, alert: Alert, route: AlertRoute, handoff_id: str, caller: Caller) -> None:
        request, details = alert_handoff(alert, route)
        self.intake.accept_system(request, handoff_id, caller, details)

    def _ensure_storm(
        self, state: StormState | None, route: AlertRoute, target: str, handoff_id: str, caller: Caller
    ) -> None:
        limits = route.storm(self.ctx.registry.alert_storm)
        first_alert = (state.first_alert if state else None) or {}
        request, details = storm_handoff(first_alert, route, target, limits)
        self.intake.accept_system(request, handoff_id, caller, details)

    def _repair(self, alert: Alert, record: AlertRecord, handoff_id: str, caller: Caller) -> None:
        """Create the handoff if the receiver that placed the alert stopped before storing it."""
        if handoff_id in self._known_handoffs:
            return
        if self.ctx.store.get(handoff_id) is not None:
            if len(self._known_handoffs) >= KNOWN_HANDOFFS_KEPT:
                self._known_handoffs.clear()
            self._known_handoffs.add(handoff_id)
            return
        route = self._route_of(record)
        if record.placement == "own":
            self._ensure_own(alert, route, handoff_id, caller)
            return
        state = self.store.read(storm_partition(record.target), STATE_ROW, StormState)
        if state is not None:
            self._ensure_storm(state, route, record.target, handoff_id, caller)

    # ------------------------------------------------------------------ helpers

    def _row(self, alert: Alert) -> AlertRecord:
        record = self.store.read(alert_partition(alert.key), ALERT_ROW, AlertRecord)
        if record is None:  # the row is never deleted
            raise _row_missing()
        return record

    def _route_named(self, name: str) -> AlertRoute | None:
        return next((r for r in self.ctx.registry.alert_routes if r.name == name), None)

    def _route_of(self, record: AlertRecord) -> AlertRoute:
        """The alert's route by the name its row keeps (a bare one when the route was removed since)."""
        return self._route_named(record.route) or AlertRoute(name=record.route, target=record.target)

    def _audit(self, handoff_id: str, type: EventType, caller: Caller, details: dict[str, Any]) -> None:
        self.ctx.store.append_audit(handoff_id, type, caller.describe(), details)

    def _routed(
        self, route: str, target: str, handoff_id: str, status: RoutedStatus, count: int
    ) -> AlertRouted:
        base = f"{self.ctx.settings.base_url}/api/handoffs/{handoff_id}"
        return AlertRouted(
            route=route,
            target=target,
            handoff_id=handoff_id,
            status=status,
            fired_count=count,
            links={"self": base, "audit": f"{base}/audit"},
        )

    def _facts(self, alert: Alert) -> dict[str, Any]:
        return notification_facts(alert, self.ctx.clock())


def _row_missing() -> ServiceUnavailable:
    """The answer when the alert's row is gone (it is never deleted): the sender retries."""
    return ServiceUnavailable("the alert is being recorded; retry", headers={"Retry-After": "5"})
