"""What a shared-memory write is, where it goes and how it can fail: shared by the use case and the writers.

Also the write's queue message as read (:class:`WriteOrder`) and its state row (:class:`WriteRow`, key
:func:`write_key`), whose layout storage keeps.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, TypedDict

from handoff.domain.records import HandoffRecord
from handoff.domain.redaction import redact
from handoff.domain.shared_memory.config import Backend
from handoff.domain.shared_memory.content import Note

# A write's state: ``pending`` until it settles as one of the others.
SETTLED = ("written", "skipped", "failed")


class WriteError(Exception):
    """A write did not happen (or may not have).

    ``transient``: retry later; ``retry_after``: the backend said how long to wait; ``backend_wide``:
    the backend is rate-limiting us, so every write to it waits; ``deferral``: nothing failed, the write
    just has to wait for its turn (spacing), so it is not an attempt; ``skip``: the write must not
    happen at all (e.g. PagerDuty's note cap), which is a warning, not a failure.
    """

    def __init__(
        self,
        reason: str,
        *,
        transient: bool,
        retry_after: float | None = None,
        backend_wide: bool = False,
        deferral: bool = False,
        skip: bool = False,
        status: int | None = None,
    ) -> None:
        reason = redact(reason)  # it is stored with the write's state and audited
        super().__init__(reason)
        self.reason = reason
        self.transient = transient
        self.retry_after = retry_after
        self.backend_wide = backend_wide
        self.deferral = deferral
        self.skip = skip
        self.status = status


@dataclass(frozen=True)
class WriteJob:
    """One write: a lifecycle point of a handoff, for one backend."""

    record: HandoffRecord
    point: str
    seq: int
    backend: Backend
    note: Note
    details: Mapping[str, object]
    first_at: datetime
    root_title: str = ""
    root_summary: str = ""


# What a writer keeps about a destination (repository and issue number, incident id, sys_id, key).
DestinationValue = str | int | bool | None


@dataclass(frozen=True)
class Destination:
    """Where a write goes; ``label`` is secret-free and goes into the audit."""

    label: str
    data: dict[str, DestinationValue] = field(default_factory=dict)

    def text(self, name: str) -> str:
        """The value ``name`` as text (KeyError when the writer did not set it)."""
        return str(self.data[name])

    def number(self, name: str) -> int:
        """The value ``name`` as a number (KeyError when unset, ValueError when not a number)."""
        value = self.data[name]
        if isinstance(value, int):
            return value
        return int(str(value))


def write_key(point: str, seq: int, backend: str) -> str:
    """Row key of one write's state."""
    return f"{point}:{seq}|{backend}"


def parse_write_key(key: str) -> tuple[str, int, str]:
    """``(point, seq, backend)`` of a :func:`write_key` (ValueError when it is not one)."""
    point_seq, backend = key.rsplit("|", 1)
    point, seq = point_seq.split(":", 1)
    return point, int(seq), backend


class WriteRow(TypedDict, total=False):
    """The state of one write as storage keeps it (absent values read back as ``""``)."""

    PartitionKey: str  # ``w|<handoff id>`` (read back only)
    Key: str  # :func:`write_key` (read back only)
    Status: str  # ``pending`` or one of :data:`SETTLED`
    Attempted: bool  # a write was sent (a retry looks for its marker first)
    Attempts: int
    Destination: str
    Url: str
    Error: str | None
    # What the sweeper queues again should the worker die before the write settles.
    Message: str
    UpdatedAt: datetime
    RetryAt: datetime  # a retry deliberately scheduled for then: the sweeper waits for it
    SweptAt: datetime
    Sweeps: int
    SweepMark: str  # the ``UpdatedAt`` the last sweep saw (another one means the write moved on)


def parse_time(value: object) -> datetime | None:
    """A stored or queued time (a datetime or ISO 8601 text) in UTC, or None when there is none."""
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=UTC)
    if not value:
        return None
    try:
        parsed = datetime.fromisoformat(str(value))
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


@dataclass(frozen=True)
class WriteOrder:
    """One message of the shared-memory queue, read: which write, which attempt.

    ``message`` is the message as queued; it travels on unchanged (a retry only counts ``attempt`` up).
    """

    handoff_id: str
    point: str
    seq: int
    backend: str
    attempt: int
    message: dict[str, Any]

    @classmethod
    def read(cls, message: dict[str, Any]) -> WriteOrder:
        """Read a queued message (ValueError or TypeError when ``seq`` or ``attempt`` is no number)."""
        return cls(
            handoff_id=str(message.get("handoffId", "")),
            point=str(message.get("point", "")),
            seq=int(message.get("seq", 0)),
            backend=str(message.get("backend", "")),
            attempt=int(message.get("attempt", 1)),
            message=message,
        )

    @property
    def first_at(self) -> datetime | None:
        """When the write was first queued (the give-up budget runs from then)."""
        return parse_time(self.message.get("firstAt"))

    def details(self) -> dict[str, object]:
        """The secret-free facts of the lifecycle event (reason, PagerDuty incident, thread)."""
        return dict(self.message.get("details") or {})

    def next_attempt(self) -> dict[str, Any]:
        """The message of the next attempt."""
        return {**self.message, "attempt": self.attempt + 1}
