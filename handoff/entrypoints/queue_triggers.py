"""Queue and timer work: deliveries, hand-backs and the sweeper that re-queues stranded handoffs."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

import azure.functions as func

from handoff.adapters.telemetry import span
from handoff.adapters.telemetry.wiring import observe_queue_age, work_attributes
from handoff.bootstrap import get_handoffs, get_shared_memory
from handoff.domain.errors import Problem
from handoff.domain.intake import load_queue_message
from handoff.ports import StorageLayoutMismatch
from handoff.settings import DELIVERY_QUEUE, STORAGE_CONNECTION, get_settings

log = logging.getLogger("handoff")
bp = func.Blueprint()


@bp.queue_trigger(arg_name="msg", queue_name=DELIVERY_QUEUE, connection=STORAGE_CONNECTION)
def deliver(msg: func.QueueMessage) -> None:
    """Run one delivery-queue message (a delivery, a hand-back, a follow-up, an alert note or a human
    entry); transient failures are rescheduled by the worker."""
    handoffs = get_handoffs()
    try:
        message = load_queue_message(msg.get_body(), "delivery message")
    except Problem as problem:
        log.error("delivery message %s: %s; moving it to the poison queue", msg.id, problem.detail)
        handoffs.context.queue.send_poison({"reason": problem.detail[:500], "messageId": msg.id})
        return
    with consume(DELIVERY_QUEUE, msg, message):
        handoffs.worker.process(message, msg.dequeue_count or 1)


@contextmanager
def consume(queue: str, msg: func.QueueMessage, message: dict[str, Any]) -> Iterator[None]:
    """Run the work of ``message`` in a consumer span that continues the trace of the step that queued
    it (its ``traceparent``), and record how long it waited in ``queue``. The one way queue triggers
    are traced."""
    attributes = {**work_attributes(message), "messaging.destination.name": queue}
    name = f"process {message.get('op') if isinstance(message.get('op'), str) else queue}"[:100]
    with span(name, attributes, kind="consumer", parent=message):
        observe_queue_age(queue, msg.insertion_time, datetime.now(UTC), message)
        yield


# Read when the app is indexed (HANDOFF_SWEEP_SCHEDULE; every 30 seconds by default).
@bp.timer_trigger(arg_name="timer", schedule=get_settings().sweep_schedule, run_on_startup=False)
def sweep(timer: func.TimerRequest) -> None:
    """Re-queue stranded work (a delivery, cross-link, hand-back or shared-memory write nobody is
    doing), so nothing accepted is lost when a worker dies between two steps."""
    try:
        report = get_handoffs().sweeper.sweep()
    except StorageLayoutMismatch:
        return  # storage holds another layout: logged once when found, and every request says so

    if report.requeued or report.gave_up or report.errors:
        log.warning(
            "sweep: re-queued %d stranded steps, gave up on %d handoffs, %d handoffs could not be swept",
            report.requeued,
            report.gave_up,
            report.errors,
        )
    writes = get_shared_memory().sweep()
    if writes.requeued or writes.gave_up or writes.errors:
        log.warning(
            "sweep: re-queued %d stranded shared-memory writes, gave up on %d, %d could not be swept",
            writes.requeued,
            writes.gave_up,
            writes.errors,
        )
