"""Timer: read the records of active investigations for what people wrote, on backends where webhooks
cannot be set up (``inbound: "poll"`` or ``"both"``)."""

from __future__ import annotations

import logging

import azure.functions as func

from handoff.bootstrap import get_human_poller, get_registry
from handoff.settings import get_settings

log = logging.getLogger("handoff")
bp = func.Blueprint()


# Read when the app is indexed: about a quarter of HANDOFF_HUMAN_POLL_SECONDS (each record is read at
# most once per that interval, whatever the timer's tick).
@bp.timer_trigger(arg_name="timer", schedule=get_settings().human_poll_schedule, run_on_startup=False)
def poll_human_entries(timer: func.TimerRequest) -> None:
    """Poll the due records of every polling backend; entries go where a webhook's would."""
    if not any(backend.polls for backend in get_registry().shared_memory.backends):
        return
    report = get_human_poller().poll()
    if report.errors:
        log.warning("human-entry poll: %d records or backends could not be polled", report.errors)
