"""The log lines operators watch in Application Insights (the workbook and alert rules of
infra/app/operations.bicep read them; docs/operations.md shows the queries):

* one line per lifecycle point of a handoff:
  ``handoff lifecycle: point=delivered handoff=<id> source=ops target=checkout latencyMs=1234 thread=<id>``
  (a delivery's line ends with B's thread or A2A task, a hand-back's adds ``outcome=``, a failure's
  ``reason=``);
* one line per message the broker parks on a poison queue:
  ``poison message: queue=handoff-deliveries-poison op=deliver handoff=<id> reason=...``.

The Functions host ships what the app logs to the ``traces`` table as plain text, so the lines are fixed
``key=value`` words that KQL takes apart: agent names, ids and ops hold no spaces (registry and id rules),
and the free-text ``reason`` comes last. A reason is secret-free by construction (it is what the audit
records) and redacted again by the log filter; no other caller text is logged.
"""

from __future__ import annotations

import logging
import re
from datetime import datetime
from typing import Any

from handoff.domain.log_lines import reason_text
from handoff.domain.records import HandoffRecord
from handoff.ports import DeliveryQueue, LifecycleListener

log = logging.getLogger("handoff")

LIFECYCLE_LOG_PREFIX = "handoff lifecycle:"
"""How every lifecycle line starts (the queries filter on it)."""
POISON_LOG_PREFIX = "poison message:"
"""How every line about a message parked on a poison queue starts."""
_ID_CHARS = re.compile(r"[^A-Za-z0-9._-]")


def lifecycle_line(record: HandoffRecord, point: str, details: dict[str, Any]) -> str:
    """The log line of ``point`` of ``record``: point, handoff id, agents, milliseconds since the handoff
    was accepted, the hand-back's outcome, the failure's reason."""
    state = record.state
    reached: datetime | None = {
        "delivered": state.delivered_at,
        "handedBack": state.handed_back_at,
    }.get(point)
    elapsed = (reached or state.updated_at) - record.stored.created_at
    line = (
        f"{LIFECYCLE_LOG_PREFIX} point={point} handoff={record.id} source={record.stored.source_agent} "
        f"target={record.stored.target_agent} latencyMs={max(0, round(elapsed.total_seconds() * 1000))}"
    )
    if point == "delivered":
        # Where B's work is: the thread (or A2A task) an operator opens next. Ids are checked as one URL
        # segment when the agent answers; only those characters are kept here too, so no answer can
        # add a line or a key=value word (such as outcome=) that the queries would read.
        where = _ID_CHARS.sub("", str(state.target_thread_id or state.remote_task_id or ""))[:100]
        if where:
            line += f" thread={where}"
    if point == "handedBack":
        handback = next((hb for hb in record.handbacks if hb.seq == details.get("seq")), None)
        if handback is not None:
            line += f" outcome={handback.request.outcome}"
    if point == "failed":
        line += f" reason={reason_text(details.get('reason'))}"
    return line


def poison_line(queue: str, message: dict[str, Any]) -> str:
    """The log line of ``message`` parked on ``queue`` (ids and the reason only, never a payload)."""
    op = "".join(str(message.get("op") or "unknown").split())[:50]
    handoff_id = "".join(str(message.get("handoffId") or "none").split())[:50]
    reason = reason_text(message.get("reason"))
    return f"{POISON_LOG_PREFIX} queue={queue} op={op} handoff={handoff_id} reason={reason}"


class LoggedLifecycle:
    """A :class:`~handoff.ports.LifecycleListener` that logs each point, then tells ``inner``."""

    def __init__(self, inner: LifecycleListener) -> None:
        self.inner = inner

    def on_lifecycle(self, record: HandoffRecord, point: str, details: dict[str, Any]) -> None:
        """Log the point (a failed one as a warning), then pass it on."""
        level = logging.WARNING if point == "failed" else logging.INFO
        log.log(level, "%s", lifecycle_line(record, point, details))
        self.inner.on_lifecycle(record, point, details)


class LoggedPoisonQueue:
    """A :class:`~handoff.ports.DeliveryQueue` that logs every message it parks on ``poison_queue``."""

    def __init__(self, inner: DeliveryQueue, poison_queue: str) -> None:
        self.inner = inner
        self.poison_queue = poison_queue

    def send(self, message: dict[str, Any], delay_seconds: float = 0) -> None:
        """Enqueue work, as ``inner`` does."""
        self.inner.send(message, delay_seconds)

    def send_poison(self, message: dict[str, Any]) -> None:
        """Park ``message`` (through ``inner``), then log it as an error."""
        self.inner.send_poison(message)
        log.error("%s", poison_line(self.poison_queue, message))


QUIET_LOGGERS = ("mcp",)
"""Libraries whose INFO lines are per-request noise (the MCP SDK's session manager logs every stateless
request's transport): only their warnings and errors are logged."""


def quiet_library_logs() -> None:
    """Log only warnings and errors of :data:`QUIET_LOGGERS` (the one place that decides it)."""
    for name in QUIET_LOGGERS:
        logging.getLogger(name).setLevel(logging.WARNING)
