"""A clock the test sets and moves: the service reads the time only through it."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

START = datetime(2025, 6, 2, 9, 0, 0, tzinfo=UTC)


class Clock:
    """Callable like :func:`handoff.services.handoffs.utcnow`; time passes only when the test says so."""

    def __init__(self, start: datetime = START) -> None:
        self.now = start

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float = 0, **delta: float) -> datetime:
        """Move the time forward (``seconds`` plus any :class:`~datetime.timedelta` keywords)."""
        self.now += timedelta(seconds=seconds, **delta)
        return self.now

    def set(self, moment: datetime) -> None:
        """Put the clock at ``moment``."""
        self.now = moment
