"""A shared-memory write, where it goes and how it can fail: shared by the use case and the writers."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from handoff.domain.records import HandoffRecord
from handoff.domain.redaction import redact
from handoff.domain.shared_memory.content import Note


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
    backend: Any
    note: Note
    details: dict[str, Any]
    first_at: datetime
    root_title: str = ""
    root_summary: str = ""


@dataclass(frozen=True)
class Destination:
    """Where a write goes; ``label`` is secret-free and goes into the audit."""

    label: str
    data: dict[str, Any] = field(default_factory=dict)
