"""Reading people's entries without webhooks: which records are polled, when one is due, and how far
back a poll reads (a cursor on the vendor's entry times).

A record is polled while an active investigation is indexed on it (see
:class:`handoff.ports.PollIndex`), at most once per ``HANDOFF_HUMAN_POLL_SECONDS``. The first poll reads
from a little before the record was indexed; each poll moves the cursor to its newest entry, and the
ids at exactly that time are kept so the next poll (which asks "since" that time, inclusive) skips them.
Whatever a poll and a webhook both see is taken once all the same: both claim the same backend and
entry id.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta

from handoff.domain.shared_memory.human_entries import HumanEntry

# The first poll of a record reads entries from this long before it was indexed: the vendor's clock
# and the broker's differ a little, and a person may answer the moment the investigation starts.
FIRST_POLL_MARGIN = timedelta(seconds=60)
# At most this many ids at the cursor's time are kept (entries of one second on one record).
MAX_SEEN_IDS = 50
# Timer ticks: divisors of a minute, so an NCRONTAB ``*/N`` fires evenly.
_TICKS = (1, 2, 3, 4, 5, 6, 10, 12, 15)


@dataclass(frozen=True)
class PollCursor:
    """Where the next poll of a record starts: entries created at ``since`` or later, except ``seen``
    (the ids of the entries at exactly ``since`` that were already taken)."""

    since: datetime
    seen: tuple[str, ...] = ()

    def news(self, entries: Iterable[HumanEntry]) -> list[HumanEntry]:
        """The entries this cursor has not passed yet, oldest first."""
        fresh = [
            e for e in entries if e.at > self.since or (e.at == self.since and e.entry_id not in self.seen)
        ]
        return sorted(fresh, key=lambda e: e.at)

    def after(self, taken: Iterable[HumanEntry]) -> PollCursor:
        """The cursor once ``taken`` (entries :meth:`news` returned) were handled."""
        newest = self
        for entry in taken:
            if entry.at > newest.since:
                newest = PollCursor(entry.at, (entry.entry_id,))
            elif entry.at == newest.since and entry.entry_id not in newest.seen:
                newest = PollCursor(newest.since, (*newest.seen, entry.entry_id)[-MAX_SEEN_IDS:])
        return newest


@dataclass(frozen=True)
class PolledHandoff:
    """One investigation indexed on a polled record, and when it was first indexed there."""

    handoff_id: str
    indexed_at: datetime


@dataclass(frozen=True)
class PolledRecord:
    """A record of a backend that is polled: the investigations on it and its poll state (``version``
    is the storage's version of that state, empty before the first poll)."""

    destination: str
    handoffs: tuple[PolledHandoff, ...]
    polled_at: datetime | None = None
    cursor: PollCursor | None = None
    version: str = ""

    def is_due(self, now: datetime, interval_seconds: float) -> bool:
        """Whether the record was last polled at least ``interval_seconds`` ago (or never)."""
        return self.polled_at is None or now - self.polled_at >= timedelta(seconds=interval_seconds)

    def start(self, handoffs: Iterable[PolledHandoff]) -> PollCursor:
        """The cursor of this poll: the saved one, else from a little before the earliest of
        ``handoffs`` (the active ones) was indexed."""
        if self.cursor is not None:
            return self.cursor
        return PollCursor(min(h.indexed_at for h in handoffs) - FIRST_POLL_MARGIN)


def poll_tick_seconds(poll_seconds: int) -> int:
    """How often the poll timer fires: about a quarter of the poll interval (so a record is polled
    at most a quarter late), between 1 and 15 seconds, dividing a minute."""
    wanted = max(1, poll_seconds // 4)
    return max(tick for tick in _TICKS if tick <= wanted)


def poll_schedule(poll_seconds: int) -> str:
    """The NCRONTAB schedule (six fields, seconds first) of the poll timer."""
    return f"*/{poll_tick_seconds(poll_seconds)} * * * * *"
