"""Work nobody is doing: the sweeper that re-queues stranded steps (and gives up on those that never
progress), and the operator's retry of failed steps."""

from __future__ import annotations

import contextlib
import logging
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from handoff.domain.audit_events import Actor, EventType
from handoff.domain.auth import Caller
from handoff.domain.models import HandoffView
from handoff.domain.records import HandoffState, NewEvent
from handoff.domain.work import Deliver, HandBack, HandoffStep
from handoff.ports import StorageUnavailable
from handoff.services.context import ServiceContext
from handoff.services.listing import keep_indexed
from handoff.services.policy import MAX_SWEEPS, SweepReport, sweep_gives_up
from handoff.services.queries import Queries
from handoff.services.state_writes import NothingToWrite, fail_step

log = logging.getLogger("handoff")


@dataclass
class _Plan:
    """What one sweep decided for one handoff."""

    steps: list[HandoffStep] = field(default_factory=list)
    sweeps: int = 0
    give_up: bool = False


def pending_steps(handoff_id: str, state: HandoffState) -> list[HandoffStep]:
    """The steps of a handoff still to be done: its delivery (or cross-link) and unposted hand-backs."""
    steps: list[HandoffStep] = []
    if state.status == "accepted" or (
        state.status in ("delivered", "handedBack") and state.crosslink == "pending"
    ):
        # One message covers both: a delivered handoff's deliver step is its cross-link.
        steps.append(Deliver(handoff_id=handoff_id))
    for seq, delivery in sorted(state.handbacks.items()):
        if delivery.status == "pending":
            steps.append(HandBack(handoff_id=handoff_id, seq=seq))
    return steps


class Sweeper:
    """The sweeper and the operator's retry."""

    def __init__(self, ctx: ServiceContext, queries: Queries) -> None:
        self.ctx = ctx
        self.queries = queries

    def sweep(self) -> SweepReport:
        """Re-enqueue work left with no activity (its enqueue failed and the caller got a 503, or the
        worker crashed between two steps): handoffs still ``accepted``, cross-links and hand-backs not
        yet posted. Idle means: no state write for ``sweep_after_seconds``, no retry due within that
        time, and no worker holding the lease.

        Each handoff is swept on its own: one that raises is logged with its id, counted, and the
        sweep carries on with the rest. Work is re-queued at most once per ``sweep_after_seconds``,
        and a handoff whose work the sweeper has re-queued :data:`~handoff.services.policy.MAX_SWEEPS`
        times with no state change in between is given up: its pending steps are marked failed (and
        parked on the poison queue) instead of being re-queued forever. Only the state entity is read,
        so a request that cannot be read does not stop the sweep either.
        """
        now = self.ctx.clock()
        cutoff = now - timedelta(seconds=self.ctx.settings.sweep_after_seconds)
        report = SweepReport()
        for handoff_id in self.ctx.store.stale_pending(cutoff):
            try:
                self._sweep_one(handoff_id, now, cutoff, report)
            except Exception:
                report.errors += 1
                log.exception("sweeper: could not sweep handoff %s; carrying on with the others", handoff_id)
        return report

    def _sweep_one(self, handoff_id: str, now: datetime, cutoff: datetime, report: SweepReport) -> None:
        plan = _Plan()

        def decide(state: HandoffState) -> None:
            plan.steps, plan.sweeps, plan.give_up = [], 0, False  # update_state may call this again
            steps = pending_steps(handoff_id, state)
            if (
                not steps
                or (state.swept_at is not None and state.swept_at > cutoff)
                # A retry scheduled for later (back-off, Retry-After) counts as activity when it is due.
                or (state.retry_at is not None and state.retry_at > cutoff)
                # A live worker holds the handoff (each of its state writes renews the lease).
                or (state.lease_until is not None and state.lease_until > now)
            ):
                raise NothingToWrite  # nothing left, or not idle: leave the state as it is
            plan.steps = steps
            plan.sweeps = state.sweeps + 1 if state.sweep_mark == state.updated_at else 1
            if sweep_gives_up(plan.sweeps, now - state.updated_at):
                plan.give_up = True
                raise NothingToWrite  # given up below, one step at a time, by the usual failure path
            state.swept_at, state.sweeps, state.sweep_mark = now, plan.sweeps, state.updated_at

        with contextlib.suppress(NothingToWrite):
            self.ctx.store.update_state(handoff_id, decide)
        if plan.give_up:
            reason = f"no progress after {MAX_SWEEPS} re-queues by the sweeper"
            for step in plan.steps:
                self.ctx.queue.send_poison(step.poisoned(reason))
                fail_step(self.ctx, step, reason, "sweeper")
            report.gave_up += 1
            log.error("sweeper: gave up on handoff %s: %s", handoff_id, reason)
            return
        for step in plan.steps:
            self.ctx.queue.send(step.wire())
            self.ctx.store.append_audit(
                handoff_id,
                EventType.REDELIVERY_SCHEDULED,
                Actor.SYSTEM,
                {"op": step.op, **({"seq": step.seq} if isinstance(step, HandBack) else {}),
                 "reason": "no activity", "sweep": plan.sweeps},
            )  # fmt: skip
            report.requeued += 1

    def retry(self, handoff_id: str, caller: Caller) -> tuple[HandoffView, list[dict[str, Any]]]:
        """``POST /api/handoffs/{id}/retry`` (operators): queue the handoff's failed steps again — a
        failed delivery (the handoff is ``accepted`` again), a failed cross-link, failed hand-backs —
        each with a fresh budget of attempts. Returns the handoff and the steps queued (none when
        nothing had failed, so a second call queues nothing). A delivery retried this way looks for the
        thread an earlier attempt may have opened before opening one, as every retry does."""
        ctx = self.ctx
        record = self.queries.readable_record(handoff_id, caller, "retry")
        ctx.authorizer.require_operator(caller, "retry a handoff's failed steps", handoff_id)
        now = ctx.clock()
        steps: list[dict[str, Any]] = []

        def reopen(state: HandoffState) -> None:
            steps.clear()  # update_state may call this again after a concurrent write
            if state.status == "failed" and not state.target_thread_id and not state.remote_task_id:
                state.status = "accepted"
                steps.append({"op": "deliver", "step": "delivery"})
            elif state.crosslink == "failed" and state.status in ("delivered", "handedBack"):
                state.crosslink = "pending"
                steps.append({"op": "deliver", "step": "crossLink"})
            for seq, delivery in sorted(state.handbacks.items()):
                if delivery.status == "failed":
                    delivery.status, delivery.error = "pending", None
                    steps.append({"op": "handback", "step": "handBack", "seq": seq})
            if not steps:
                raise NothingToWrite
            state.retry_at = state.swept_at = None
            state.sweeps = 0
            state.updated_at = now

        def requested(_: HandoffState) -> list[NewEvent]:
            details = {"steps": [{k: v for k, v in step.items() if k != "op"} for step in steps]}
            return [NewEvent(EventType.RETRY_REQUESTED, caller.describe(), details)]

        with contextlib.suppress(NothingToWrite):
            state = ctx.store.update_state(record.id, reopen, requested)
            moved = state.status != record.state.status
            record = record.model_copy(update={"state": state})
            if moved:
                keep_indexed(ctx, record)  # before the step is queued, as at intake
        for step in steps:
            message = (
                HandBack(handoff_id=record.id, seq=step["seq"])
                if "seq" in step
                else Deliver(handoff_id=record.id)
            )
            # Stored before queued: should the enqueue fail, the sweeper picks the step up.
            with contextlib.suppress(StorageUnavailable):
                ctx.queue.send(message.wire())
        return self.queries.view(record), steps
