"""Queue and timer work: deliveries, hand-backs and the sweeper that re-queues stranded handoffs."""

from __future__ import annotations

import json
import logging

import azure.functions as func

from handoff.app import get_service
from handoff.settings import DELIVERY_QUEUE, STORAGE_CONNECTION

log = logging.getLogger("handoff")
bp = func.Blueprint()


@bp.queue_trigger(arg_name="msg", queue_name=DELIVERY_QUEUE, connection=STORAGE_CONNECTION)
def deliver(msg: func.QueueMessage) -> None:
    """Deliver a handoff or a hand-back; transient failures are rescheduled by the service."""
    try:
        message = json.loads(msg.get_body())
    except ValueError:
        log.error("delivery message %s is not JSON; moving it to the poison queue", msg.id)
        get_service().queue.send_poison({"reason": "not JSON", "messageId": msg.id})
        return
    get_service().process(message, msg.dequeue_count or 1)


@bp.timer_trigger(arg_name="timer", schedule="0 */1 * * * *", run_on_startup=False)
def sweep(timer: func.TimerRequest) -> None:
    """Re-queue handoffs left ``accepted`` with no delivery activity, so nothing accepted is stranded."""
    count = get_service().sweep()
    if count:
        log.warning("re-queued %d stranded handoffs", count)
