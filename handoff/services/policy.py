"""How queue work is retried, given up, and done at most once.

One retry-or-give-up rule for every kind of work (exponential back-off with jitter, never sooner than
the agent's ``Retry-After``, at most ``HANDOFF_MAX_DELIVERY_ATTEMPTS`` attempts, then the message is
parked on the poison queue with the reason and the step is recorded as failed); one rule for when the
sweepers give up; and the marker checks that keep a retried post from being doubled.
"""

from __future__ import annotations

import logging
import random
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Protocol

from handoff.domain.audit_events import Actor, EventType
from handoff.domain.log_lines import gave_up_line
from handoff.domain.records import AgentCallError
from handoff.domain.registry import AgentConfig
from handoff.domain.work import Work
from handoff.ports import AgentGateway, DeliveryQueue, HandoffStore
from handoff.settings import Settings

log = logging.getLogger("handoff")

# The sweeper re-queues a handoff's stranded work at most this many times without the handoff's state
# changing in between; the next time it marks the work failed instead.
MAX_SWEEPS = 5
# ... and only once it has been idle this long: with a short HANDOFF_SWEEP_AFTER_SECONDS, five re-queues
# come within minutes, and a handoff merely waiting in a long queue backlog must not be failed for it.
GIVE_UP_AFTER = timedelta(minutes=30)


class Failure(Protocol):
    """What the give-up rule reads of a failed call (an :class:`AgentCallError`, a shared-memory
    ``WriteError``)."""

    @property
    def reason(self) -> str: ...

    @property
    def transient(self) -> bool: ...


class WorkPorts(Protocol):
    """What the retry rule needs of a use case's context (:class:`~handoff.services.context.ServiceContext`
    has it)."""

    @property
    def settings(self) -> Settings: ...

    @property
    def store(self) -> HandoffStore: ...

    @property
    def queue(self) -> DeliveryQueue: ...

    @property
    def clock(self) -> Callable[[], datetime]: ...


def backoff_seconds(attempt: int, retry_after: float | None, base: float, cap: float) -> float:
    """Delay before attempt ``attempt + 1``: exponential with jitter, never less than ``Retry-After``."""
    delay = min(cap, base * (2.0 ** max(0, attempt - 1)))
    delay = delay * (0.5 + random.random() / 2)  # noqa: S311 - jitter, not security
    if retry_after is not None:
        delay = max(delay, retry_after)
    return min(max(delay, 0.0), max(cap, retry_after or 0.0))


def gave_up_reason(exc: Failure, attempt: int) -> str:
    """The reason recorded when work gives up: the error, and for a transient one how often it was tried."""
    return exc.reason if not exc.transient else f"{exc.reason} (gave up after {attempt} attempts)"


def retry_or_give_up(
    ports: WorkPorts,
    message: Work,
    exc: AgentCallError,
    *,
    give_up: Callable[[str], None],
    poison: bool = True,
    on_retry: Callable[[datetime], None] | None = None,
    count_attempts: bool = True,
) -> None:
    """After ``message`` failed with ``exc``: queue its next attempt after a back-off (audited as
    ``retryScheduled``; ``on_retry`` is told when it is due first) while the failure is transient and
    attempts are left; otherwise park the message on the poison queue with the reason (unless ``poison``
    is False: work that is not worth replaying) and then ``give_up(reason)``, so once the failure is
    visible the message is already there to replay. The reason is :func:`gave_up_reason`, or with
    ``count_attempts`` False the error's own (what the human-entry audit has always recorded)."""
    settings = ports.settings
    attempt = message.attempt
    if exc.transient and attempt < settings.max_delivery_attempts:
        delay = backoff_seconds(
            attempt, exc.retry_after, settings.retry_base_seconds, settings.retry_max_seconds
        )
        if on_retry is not None:
            on_retry(ports.clock() + timedelta(seconds=delay))
        ports.store.append_audit(
            message.handoff_id,
            EventType.RETRY_SCHEDULED,
            Actor.BROKER,
            {
                "op": message.wire()["op"],
                "attempt": attempt,
                "reason": exc.reason,
                "delaySeconds": round(delay, 1),
            },
        )
        ports.queue.send(message.next_attempt().wire(), delay)
        return
    reason = gave_up_reason(exc, attempt) if count_attempts else exc.reason
    log.warning("%s", gave_up_line(message.wire()["op"], message.handoff_id, reason, attempts=attempt))
    if poison:
        ports.queue.send_poison(message.poisoned(reason))
    give_up(reason)


# ---------------------------------------------------------------- sweepers


@dataclass
class SweepReport:
    """What one sweep did: messages re-queued, work given up, items that raised."""

    requeued: int = 0
    gave_up: int = 0
    errors: int = 0


def sweep_gives_up(sweeps: int, idle: timedelta) -> bool:
    """Whether work re-queued ``sweeps`` times with no progress, idle for ``idle``, is given up."""
    return sweeps > MAX_SWEEPS and idle >= GIVE_UP_AFTER


# ---------------------------------------------------------------- at most once


def look_back_since(settings: Settings, attempted_at: datetime | None) -> datetime | None:
    """How far back a retry looks for what an earlier attempt wrote: a clock-skew margin before the
    first attempt (no limit for a record written before attempts were timed)."""
    if attempted_at is None:
        return None
    return attempted_at - timedelta(seconds=settings.clock_skew_seconds)


def message_id_of(message: dict[str, Any]) -> str | None:
    """The id of a message an agent listed (for the audit), when it has a printable one."""
    value = message.get("id")
    return value[:200] if isinstance(value, str) and value.isprintable() else None


@dataclass(frozen=True)
class Posted:
    """A post made at most once: the message's id (when known), and whether an earlier attempt had
    already posted it."""

    message_id: str | None
    recovered: bool


def post_once(
    agents: AgentGateway,
    agent: AgentConfig,
    thread_id: str,
    needle: str,
    text: str,
    *,
    look: bool = True,
    since: datetime | None = None,
    before_post: Callable[[], object] | None = None,
) -> Posted:
    """Post ``text`` (which ends in the marker line ``needle``) into the thread unless it is there.

    With ``look`` the thread is read first (back to ``since``) for the message of an earlier attempt;
    ``before_post`` records that an attempt is being made (so the next one knows to look)."""
    found = agents.find_message(agent, thread_id, needle, since) if look else None
    if found is not None:
        return Posted(message_id_of(found), recovered=True)
    if before_post is not None:
        before_post()
    return Posted(agents.post_message(agent, thread_id, text), recovered=False)
