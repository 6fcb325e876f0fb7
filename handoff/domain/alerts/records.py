"""The rows of the alert table: one per alert id, one storm state per target agent (see
:mod:`.storms`), one note state per handoff. Unknown fields of older rows are ignored when read."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal, TypeVar

from pydantic import BaseModel

ALERT_ROW = "alert"  # the row of an alert id in its partition
STATE_ROW = "state"  # the row of a storm state or a note state in its partition

ModelT = TypeVar("ModelT", bound=BaseModel)


class AlertRecord(BaseModel):
    """One alert id: where it went and what happened to it since. Inserted once, updated with ETags."""

    alert_id: str
    label: str
    route: str
    target: str
    handoff_id: str | None = None  # None until a receiver of the alert id has placed it
    placement: Literal["own", "storm"] | None = None
    condition: Literal["fired", "resolved"] = "fired"
    fired_count: int = 1
    last_fired_reported: str | None = None
    resolved_count: int = 0
    resolved_at: str | None = None
    resolve_noted: int = 0
    resolve_attempted: bool = False


class NoteState(BaseModel):
    """Per handoff: the "fired again" / "more related alerts" notes posted into the target's thread."""

    handoff_id: str
    storm: bool = False
    alert_key: str | None = None
    scheduled: bool = False
    scheduled_for: datetime | None = None
    last_note_at: datetime | None = None
    seq: int = 0
    attempted: bool = False
    noted_fired: int = 1
    noted_audit_seq: int = 0


def alert_partition(key: str) -> str:
    """The partition of one alert id (by its :func:`~.parsing.alert_key`)."""
    return f"alert-{key}"


def storm_partition(target: str) -> str:
    """The partition of one target agent's storm state."""
    return f"storm-{target.lower()}"


def note_partition(handoff_id: str) -> str:
    """The partition of one handoff's note state."""
    return f"notes-{handoff_id}"


def with_values(doc: ModelT | None, **values: Any) -> ModelT | None:
    """``doc`` with ``values`` set (None stays None: nothing to write), for storage updates."""
    if doc is None:
        return None
    for name, value in values.items():
        setattr(doc, name, value)
    return doc
