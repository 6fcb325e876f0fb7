"""Writes of a handoff's state by the queue worker: the per-handoff lease that fences them, the common
mutations, and the record of a step's final failure.

A worker holds a handoff's lease while it runs a step. Steps that call nobody before their first state
write (delivery into an SRE Agent thread, posting a hand-back) take the lease in that write, together
with the change it makes (the "attempting" mark before a call): one conditional write on the version
of the state the step started from. Their last write lets go of the lease in the same way.
"""

from __future__ import annotations

import contextlib
import contextvars
import logging
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta

from handoff.domain.audit_events import Actor, EventType
from handoff.domain.log_lines import cross_link_failed_line
from handoff.domain.records import HandoffState, NewEvent
from handoff.domain.work import HandBack, HandoffStep
from handoff.ports import AuditEvents, LeaseBusy, LeaseLost
from handoff.services.context import ServiceContext
from handoff.services.lifecycle import notify
from handoff.services.listing import index_after_write
from handoff.settings import Settings

log = logging.getLogger("handoff")


@dataclass
class Lease:
    """The lease a worker holds on the handoff it works on (set while a queue message is processed):
    every state write of the worker checks that it still holds the lease and renews it.

    ``taken`` is False while the lease is still to be taken by the worker's first state write, on the
    ``version`` of the state its step started from; ``released`` once a write let go of it.
    """

    handoff_id: str
    token: str
    taken: bool = True
    version: str | None = None
    released: bool = False


_HELD: contextvars.ContextVar[Lease | None] = contextvars.ContextVar("held_lease", default=None)


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
        _take(state, token, now, ctx.settings)

    ctx.store.update_state(handoff_id, take)
    return token


def _take(state: HandoffState, token: str, now: datetime, settings: Settings) -> None:
    if state.lease_until and state.lease_until > now and state.lease_owner != token:
        raise LeaseBusy
    state.lease_until, state.lease_owner = now + lease_duration(settings), token


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
def holding(handoff_id: str, token: str) -> Iterator[Lease]:
    """While inside, this thread's :func:`touch` of ``handoff_id`` is fenced by (and renews) the lease
    ``token``, already taken."""
    with hold(Lease(handoff_id, token)) as lease:
        yield lease


@contextlib.contextmanager
def taking(handoff_id: str, version: str | None) -> Iterator[Lease]:
    """While inside, the first :func:`touch` of ``handoff_id`` takes its lease in the write it makes, on
    state ``version`` (the one the step started from: :class:`~handoff.ports.StateChanged` when the
    state changed since, :class:`~handoff.ports.LeaseBusy` while another worker holds the lease); later
    touches are fenced by it and renew it, as in :func:`holding`."""
    with hold(Lease(handoff_id, uuid.uuid4().hex, taken=False, version=version)) as lease:
        yield lease


@contextlib.contextmanager
def hold(lease: Lease) -> Iterator[Lease]:
    """While inside, this thread's :func:`touch` of the lease's handoff goes by ``lease``."""
    held = _HELD.set(lease)
    try:
        yield lease
    finally:
        _HELD.reset(held)


def touch(
    ctx: ServiceContext,
    handoff_id: str,
    mutate: Callable[[HandoffState], None],
    events: AuditEvents = (),
    *,
    release: bool = False,
) -> HandoffState:
    """Change the handoff's state (and its ``updated_at``), with ``events`` audited in the same write. A
    worker holding the handoff's lease writes only while it still holds it
    (:class:`~handoff.ports.LeaseLost` otherwise), and each write renews it (or, with ``release``, lets
    go of it: the worker's last write of its step); writes of anyone else neither check nor renew it.
    A write that changes the status also writes the handoff's index entry, after it."""
    now = ctx.clock()
    lease = _HELD.get()
    if lease is not None and lease.handoff_id != handoff_id:
        lease = None
    version = lease.version if lease is not None and not lease.taken else None
    moved: list[bool] = [False]  # whether the write that was made changed the status

    def apply(state: HandoffState) -> None:
        before = state.status
        if lease is not None:
            if lease.taken and state.lease_owner != lease.token:
                raise LeaseLost(handoff_id)
            _take(state, lease.token, now, ctx.settings)
            if release:
                state.lease_until = state.lease_owner = None
        mutate(state)
        state.updated_at = now
        moved[0] = state.status != before

    state = ctx.store.update_state(handoff_id, apply, events, version=version)
    if lease is not None:
        lease.taken = True
        lease.released = lease.released or release
    if moved[0]:
        index_after_write(ctx, handoff_id)  # the listing's entry follows the status it shows
    return state


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

    Decided and written on the state entity alone, with its audit event (one conditional write), so it
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

        details = {"seq": seq, "reason": reason, "how": how}
        touch(ctx, handoff_id, handback_failed, [NewEvent(EventType.HAND_BACK_FAILED, Actor.BROKER, details)])
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

    def event(_: HandoffState) -> list[NewEvent]:
        return [NewEvent(failed_step[0], Actor.BROKER, {"reason": reason, "how": how})]

    touch(ctx, handoff_id, failed, event)
    if failed_step[0] is EventType.CROSS_LINK_FAILED:
        log.warning("%s", cross_link_failed_line(handoff_id, reason, how))
    if failed_step[0] is EventType.DELIVERY_FAILED:
        notify(ctx, handoff_id, "failed", {"reason": reason})
