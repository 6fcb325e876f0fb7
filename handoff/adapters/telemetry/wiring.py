"""Telemetry around the ports and the entrypoints: queue messages carry the trace context, lifecycle
points become metrics and span attributes, and accepted handoffs are counted. Every part is a no-op
while telemetry is off."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from handoff.adapters.telemetry import Attributes, Span, count, current_span, enabled, inject, observe, span
from handoff.domain.alerts.receipt import AlertReceipt
from handoff.domain.models import HandoffView
from handoff.domain.records import HandoffRecord
from handoff.ports import DeliveryQueue, LifecycleListener

# The attributes that name a handoff on every span about one.
HANDOFF_ID = "handoff.id"
CHAIN_ID = "handoff.chain_id"
SOURCE = "handoff.source"
TARGET = "handoff.target"


def record_attributes(record: HandoffRecord) -> dict[str, str]:
    """The attributes of a stored handoff: its id, its chain's root id, source and target agents."""
    stored = record.stored
    return {
        HANDOFF_ID: record.id,
        CHAIN_ID: stored.root_id,
        SOURCE: stored.source_agent,
        TARGET: stored.target_agent,
    }


def view_attributes(view: HandoffView) -> dict[str, str]:
    """The attributes of a handoff as the API shows it."""
    return {
        HANDOFF_ID: view.id,
        CHAIN_ID: view.root_handoff_id,
        SOURCE: view.source.agent,
        TARGET: view.target.agent,
    }


def accepted(current: Span, view: HandoffView, created: bool, via: str) -> None:
    """Name the handoff on the accepting span; count it when this request created it (not a replay)."""
    current.set({**view_attributes(view), "handoff.created": created})
    if created:
        count("handoff.accepted", {TARGET: view.target.agent, "handoff.via": via})


_NEW_HANDOFF = ("created", "stormStarted")


def alert_received(current: Span, receipt: AlertReceipt) -> None:
    """Name what an alert did on its span (one event per handoff it went to; the handoff itself when it
    went to one) and count the handoffs it started."""
    current.set({"alert.condition": receipt.monitor_condition, "alert.routed": len(receipt.routed)})
    for routed in receipt.routed:
        facts = {HANDOFF_ID: routed.handoff_id, TARGET: routed.target, "alert.status": routed.status}
        current.event("alert.routed", facts)
        if routed.status in _NEW_HANDOFF:
            count("handoff.accepted", {TARGET: routed.target, "handoff.via": "alert"})
    if len(receipt.routed) == 1:
        only = receipt.routed[0]
        current.set({HANDOFF_ID: only.handoff_id, TARGET: only.target, "alert.status": only.status})


def work_attributes(message: dict[str, Any]) -> dict[str, str | int]:
    """The attributes of a queue message: the handoff it is about, its op and attempt (a shared-memory
    write: its lifecycle point and backend)."""
    attributes: dict[str, str | int] = {}
    named = (
        ("handoffId", HANDOFF_ID),
        ("op", "handoff.op"),
        ("point", "handoff.point"),
        ("backend", "shared_memory.backend"),
    )
    for key, name in named:
        value = message.get(key)
        if isinstance(value, str) and value:
            attributes[name] = "".join(value.split())[:100]
    attempt = message.get("attempt")
    if isinstance(attempt, int) and not isinstance(attempt, bool):
        attributes["handoff.attempt"] = attempt
    return attributes


def observe_queue_age(queue: str, inserted: datetime | None, now: datetime, message: dict[str, Any]) -> None:
    """Record how long ``message`` waited in ``queue`` (from its insertion to now)."""
    if inserted is not None:
        inserted = inserted if inserted.tzinfo is not None else inserted.replace(tzinfo=UTC)
        attributes: Attributes = {
            "messaging.destination.name": queue,
            "handoff.op": str(message.get("op", "")),
        }
        observe("handoff.queue.age", (now - inserted).total_seconds(), attributes)


class TracedQueue:
    """A :class:`~handoff.ports.DeliveryQueue` whose messages carry the W3C trace context of the step
    that sends them (``traceparent``, ``tracestate``), sent in a producer span; every message parked on
    the poison queue is counted."""

    def __init__(self, inner: DeliveryQueue, queue: str) -> None:
        self.inner = inner
        self.queue = queue

    def send(self, message: dict[str, Any], delay_seconds: float = 0) -> None:
        """Enqueue ``message`` with the current trace context."""
        if not enabled():
            self.inner.send(message, delay_seconds)
            return
        attributes: Attributes = {
            **work_attributes(message),
            "messaging.destination.name": self.queue,
            "messaging.operation.name": "send",
        }
        with span(f"send {self.queue}", attributes, kind="producer"):
            self.inner.send(dict(inject(dict(message))), delay_seconds)

    def send_poison(self, message: dict[str, Any]) -> None:
        """Park ``message`` (through ``inner``) and count it."""
        self.inner.send_poison(message)
        count(
            "handoff.poison",
            {"messaging.destination.name": self.queue, "handoff.op": str(message.get("op", ""))},
        )


class MeteredLifecycle:
    """A :class:`~handoff.ports.LifecycleListener` that names the handoff on the current span, counts
    deliveries and failures by target, records the delivery latency, then tells ``inner``."""

    def __init__(self, inner: LifecycleListener) -> None:
        self.inner = inner

    def on_lifecycle(self, record: HandoffRecord, point: str, details: dict[str, Any]) -> None:
        """Record the point, then pass it on."""
        if enabled():
            attributes = record_attributes(record)
            current = current_span()
            current.set(attributes)
            current.event(f"handoff.{point}")
            target = {TARGET: record.stored.target_agent}
            if point == "delivered":
                count("handoff.delivered", target)
                reached = record.state.delivered_at or record.state.updated_at
                observe(
                    "handoff.delivery.duration", (reached - record.stored.created_at).total_seconds(), target
                )
            elif point == "failed":
                count("handoff.failed", target)
        self.inner.on_lifecycle(record, point, details)
