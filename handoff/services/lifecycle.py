"""Telling the rest of the broker about a handoff's lifecycle: the lifecycle listener (shared memory) and
the history index. Neither can delay or fail the handoff: what they raise is logged."""

from __future__ import annotations

import logging
from typing import Any

from handoff.domain.records import HandoffRecord, LifecyclePoint
from handoff.ports import NoLifecycleListener
from handoff.services.context import ServiceContext

log = logging.getLogger("handoff")


def notify(ctx: ServiceContext, handoff_id: str, point: LifecyclePoint, details: dict[str, Any]) -> None:
    """Call the lifecycle listener; it only enqueues work, and nothing it raises reaches the handoff. It is
    told right after the write that recorded the point, so the handoff this process wrote last will do."""
    if isinstance(ctx.lifecycle, NoLifecycleListener):
        return
    try:
        ctx.lifecycle.on_lifecycle(_latest(ctx, handoff_id), point, details)
    except Exception:
        log.exception("lifecycle listener failed for %s at %s", handoff_id, point)


def _latest(ctx: ServiceContext, handoff_id: str) -> HandoffRecord:
    """The handoff as this process last read or wrote it (read when it has no copy)."""
    record = ctx.store.get(handoff_id, fresh=False)
    if record is None:
        raise LookupError(f"no handoff {handoff_id}")
    return record


def publish_alert_resolved(
    ctx: ServiceContext, handoff_id: str, details: dict[str, Any] | None = None
) -> None:
    """Tell the lifecycle listener that the alert behind ``handoff_id`` resolved (after the caller has
    recorded its own ``alertResolved`` audit event). ``details`` may carry ``sharedMemory`` (extra
    backend names from the alert route) and ``pagerdutyIncidentId`` (the alert's custom property)."""
    notify(ctx, handoff_id, "alertResolved", dict(details or {}))


def index_handback(
    ctx: ServiceContext, record: HandoffRecord, seq: int, alert_rule: str | None = None
) -> None:
    """Write the history index entries of hand-back ``seq`` of ``record`` (idempotent). Every hand-back
    path calls this once the hand-back is recorded; a failure is logged and never fails the hand-back."""
    if ctx.history is None:
        return
    try:
        handback = next((hb for hb in record.handbacks if hb.seq == seq), None)
        if handback is not None:
            ctx.history.index_handback(record, handback, alert_rule or record.stored.alert_rule)
    except Exception:
        log.exception("could not index hand-back %s of %s in the history", seq, record.id)
