"""The timer part of the local host: fires each timer-triggered function on its schedule."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from datetime import UTC, datetime

from azure.functions.timer import TimerRequest

from devserver.hostlib.functions import TimerFunction
from devserver.hostlib.invocation import HostServices, InvocationError

log = logging.getLogger("Host.Function")


def utc_now() -> datetime:
    """The current time, timezone-aware in UTC (schedules are evaluated in UTC)."""
    return datetime.now(UTC)


class TimerRunner:
    """Runs one timer function until the host stops, as the host's timer listener does."""

    def __init__(self, host: HostServices, spec: TimerFunction) -> None:
        """Nothing runs until :meth:`run`."""
        self.host = host
        self.spec = spec

    async def run(self) -> None:
        """Fire on schedule until the host stops; an unexpected error is logged, not raised."""
        try:
            await self._loop()
        except Exception:
            # Without this a broken timer would fail silently inside its task.
            log.exception("Timer of '%s' stopped on an error", self.spec.name)

    async def _loop(self) -> None:
        host, spec = self.host, self.spec
        last: datetime | None = None
        if spec.run_on_startup and not host.stopping():
            last = await self._fire(utc_now(), last, past_due=False)
        while not host.stopping():
            scheduled = spec.schedule.next_after(utc_now())
            await host.sleep_unless_stopping((scheduled - utc_now()).total_seconds())
            if host.stopping():
                break
            if utc_now() < scheduled:
                continue
            # A firing more than a second late (a busy or suspended machine) counts as past due.
            past_due = (utc_now() - scheduled).total_seconds() > 1.0
            last = await self._fire(scheduled, last, past_due=past_due)

    async def _fire(self, scheduled: datetime, last: datetime | None, *, past_due: bool) -> datetime:
        now = utc_now()
        status = {
            "Last": (last or now).isoformat(),
            "Next": self.spec.schedule.next_after(now).isoformat(),
            "LastUpdated": now.isoformat(),
        }
        request = TimerRequest(past_due=past_due, schedule_status=status, schedule={"AdjustForDST": True})
        # Like the host, one timer function never overlaps itself: the next firing waits for this one.
        reason = f"Timer fired at {scheduled.isoformat()}"
        task = asyncio.create_task(self.host.invoke(self.spec, request, reason))
        self.host.track(task)
        with contextlib.suppress(InvocationError):
            await task
        return scheduled
