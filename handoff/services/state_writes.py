"""Writes of a handoff's state by the queue worker: the per-handoff lease that fences them, the common
mutations, and the record of a step's final failure."""

from __future__ import annotations

import contextlib
import contextvars
import logging
import uuid
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta

from handoff.domain.audit_events import Actor, EventType
from handoff.domain.records import HandoffState
from handoff.domain.work import HandBack, HandoffStep
from handoff.ports import LeaseBusy, LeaseLost
from handoff.services.context import ServiceContext
from handoff.services.lifecycle import notify
from handoff.settings import Settings

log = logging.getLogger("handoff")

# The handoff this worker holds the lease of, and its token (set while a queue message is processed):
# every state write of the worker checks that it still holds the lease and renews it.
_HELD: contextvars.ContextVar[tuple[str, str] | None] = contextvars.ContextVar("held_lease", default=None)


class NothingToWrite(Exception):
    """Raised by a state mutation to leave the state unwritten (``update_state`` writes only when the
    mutation returns)."""


def lease_duration(settings: Settings) -> timedelta:
    """How long a worker's lease on a handoff lasts past its last state write."""
    return timedelta(seconds=settings.delivery_lease_seconds)


def acquire_lease(ctx: ServiceContext, handoff_id: str) -> str:
    """Take the handoff's lease (an ETag-conditional write); returns this worker's token, or raises
    :class:`~handoff.ports.LeaseBusy` while another worker holds it."""
    now = ctx.clock()
    token = uuid.uuid4().hex

    def take(state: HandoffState) -> None:
        if state.lease_until and state.lease_until > now:
            raise LeaseBusy
        state.lease_until, state.lease_owner = now + lease_duration(ctx.settings), token

    ctx.store.update_state(handoff_id, take)
    return token


def release_lease(ctx: ServiceContext, handoff_id: str, token: str) -> None:
    """Give the lease back unless another worker has taken it over meanwhile (a failure is logged: the
    lease expires by itself)."""

    def release(state: HandoffState) -> None:
        if state.lease_owner != token:
            raise NothingToWrite  # taken over meanwhile: the lease is the other worker's
        state.lease_until = state.lease_owner = None

    try:
        with contextlib.suppress(NothingToWrite):
            ctx.store.update_state(handoff_id, release)
    except Exception:
        log.exception("could not release the delivery lease of %s", handoff_id)


@contextlib.contextmanager
def holding(handoff_id: str, token: str) -> Iterator[None]:
    """While inside, this thread's :func:`touch` of ``handoff_id`` is fenced by (and renews) the lease
    ``token``."""
    held = _HELD.set((handoff_id, token))
    try:
        yield
    finally:
        _HELD.reset(held)


def touch(ctx: ServiceContext, handoff_id: str, mutate: Callable[[HandoffState], None]) -> HandoffState:
    """Change the handoff's state (and its ``updated_at``). A worker holding the handoff's lease writes
    only while it still holds it (:class:`~handoff.ports.LeaseLost` otherwise), and each write renews it;
    writes of anyone else neither check nor renew it."""
    now = ctx.clock()
    held = _HELD.get()
    token = held[1] if held is not None and held[0] == handoff_id else None

    def apply(state: HandoffState) -> None:
        if token is not None:
            if state.lease_owner != token:
                raise LeaseLost(handoff_id)
            state.lease_until = now + lease_duration(ctx.settings)
        mutate(state)
        state.updated_at = now

    return ctx.store.update_state(handoff_id, apply)


def create_attempt(now: datetime) -> Callable[[HandoffState], None]:
    """The state change made just before a thread is created (or an A2A message sent): the flag a retry
    looks at, the time of the first attempt (how far back it looks), and the attempt count."""

    def mark(state: HandoffState) -> None:
        state.create_attempted = True
        state.create_attempted_at = state.create_attempted_at or now
        state.attempts += 1

    return mark


def fail_step(ctx: ServiceContext, step: HandoffStep, reason: str, how: str) -> None:
    """Record a final failure of one step: the handoff's delivery, its cross-link, or one hand-back.

    Decided and written on the state entity alone (one conditional update, then one audit insert), so it
    works even when the rest of the record cannot be read.
    """
    handoff_id = step.handoff_id
    if isinstance(step, HandBack):
        seq = step.seq

        def handback_failed(s: HandoffState) -> None:
            if seq in s.handbacks:
                s.handbacks[seq].status = "failed"
                s.handbacks[seq].error = reason
            s.last_error = reason

        touch(ctx, handoff_id, handback_failed)
        ctx.store.append_audit(
            handoff_id, EventType.HAND_BACK_FAILED, Actor.BROKER, {"seq": seq, "reason": reason, "how": how}
        )
        return
    failed_step: list[EventType] = []

    def failed(s: HandoffState) -> None:
        failed_step.clear()  # update_state may call this again after a concurrent write
        if s.target_thread_id or s.status != "accepted":
            failed_step.append(EventType.CROSS_LINK_FAILED)
            s.crosslink = "failed"
        else:
            failed_step.append(EventType.DELIVERY_FAILED)
            s.status = "failed"
        s.last_error = reason

    touch(ctx, handoff_id, failed)
    ctx.store.append_audit(handoff_id, failed_step[0], Actor.BROKER, {"reason": reason, "how": how})
    if failed_step[0] is EventType.DELIVERY_FAILED:
        notify(ctx, handoff_id, "failed", {"reason": reason})
