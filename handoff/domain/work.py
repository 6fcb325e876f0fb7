"""The delivery queue's work messages: one model per kind of work, in one union discriminated on ``op``.

On the wire every message is a JSON object with camelCase names, exactly as the broker has always written
them (``{"op": "deliver", "handoffId": "...", "attempt": 1}``). The worker parses what it dequeues with
:func:`parse_work`; a message that is not one of these is :class:`MalformedWork`, and the worker parks it
on the poison queue with the reason.
"""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal, Self

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    TypeAdapter,
    ValidationError,
)
from pydantic.alias_generators import to_camel

from handoff.domain.ids import is_uuid


def _handoff_id(value: str) -> str:
    if not is_uuid(value):
        raise ValueError("not a handoff id")
    return value


HandoffId = Annotated[str, AfterValidator(_handoff_id)]

_TRACEPARENT = re.compile(r"[0-9a-f]{2}-[0-9a-f]{32}-[0-9a-f]{16}-[0-9a-f]{2}")
_TRACESTATE_CHARS = 512


def _traceparent(value: object) -> str | None:
    # A trace context is a hint, never a reason to refuse work: one that is not W3C-shaped is dropped.
    return value if isinstance(value, str) and _TRACEPARENT.fullmatch(value) else None


def _tracestate(value: object) -> str | None:
    return value if isinstance(value, str) and 0 < len(value) <= _TRACESTATE_CHARS else None


def _absent(value: object) -> bool:
    return value is None


TraceParent = Annotated[str | None, BeforeValidator(_traceparent)]
TraceState = Annotated[str | None, BeforeValidator(_tracestate)]


class _Wire(BaseModel):
    # Fields the broker does not know (a replayed poison copy carries its ``reason``) are ignored.
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="ignore", frozen=True)


class Work(_Wire):
    """What every work message carries: the handoff it is about and which attempt this is (from 1)."""

    handoff_id: HandoffId
    attempt: int = 1
    # The W3C trace context of the step that queued the work (docs/operations.md), so one trace runs
    # across the queue hop; optional, and left off the wire when absent, so older messages stay valid.
    traceparent: TraceParent = Field(default=None, exclude_if=_absent)
    tracestate: TraceState = Field(default=None, exclude_if=_absent)

    def wire(self) -> dict[str, Any]:
        """The message as it is queued (camelCase names, ``op`` first)."""
        data = self.model_dump(mode="json", by_alias=True)
        return {"op": data.pop("op", None), **data}

    def next_attempt(self) -> Self:
        """The same work, one attempt later."""
        return self.model_copy(update={"attempt": self.attempt + 1})

    def poisoned(self, reason: str) -> dict[str, Any]:
        """The message as it is parked on the poison queue: itself, with the reason."""
        return {**self.wire(), "reason": reason}


class Deliver(Work):
    """Deliver the handoff to its target (and cross-link it into the source thread)."""

    op: Literal["deliver"] = "deliver"


class HandBack(Work):
    """Post hand-back ``seq`` into the source thread."""

    op: Literal["handback"] = "handback"
    seq: int = Field(ge=1)


def _unset(value: object) -> bool:
    return value is False


class A2APoll(Work):
    """Poll the A2A task the handoff started.

    ``push``: the partner was asked to push notifications for the task, so scheduled polls are only a
    safety net at the poll interval. ``notified``: run at once because a push notification said the task
    ended; such a poll does not schedule another (the scheduled ones carry on). Both are left off the
    wire when false, so the message reads as it always has.
    """

    op: Literal["a2aPoll"] = "a2aPoll"
    push: bool = Field(default=False, exclude_if=_unset)
    notified: bool = Field(default=False, exclude_if=_unset)


class Watch(Work):
    """Look at the target's thread for an automatic hand-back."""

    op: Literal["watch"] = "watch"


class AlertResolved(Work):
    """Post the note that resolution ``seq`` of an alert came in into the target's thread."""

    op: Literal["alertResolved"] = "alertResolved"
    alert_key: str
    seq: int = 1


class AlertNote(Work):
    """Post the handoff's scheduled "fired again" or storm-update note."""

    op: Literal["alertNote"] = "alertNote"


class EntryThread(_Wire):
    """One thread a human entry goes into."""

    agent: str
    thread_id: str


class EntryPayload(_Wire):
    """A human entry as queued: already redacted and cut to size."""

    backend: str
    platform: str
    entry_id: str
    record: str
    author: str
    at: str
    text: str
    url: str | None = None
    override: bool = False


class HumanEntry(Work):
    """Post a human's entry into the threads of the agents working the handoff."""

    op: Literal["humanEntry"] = "humanEntry"
    threads: list[EntryThread] = []
    entry: EntryPayload


WorkMessage = Annotated[
    Deliver | HandBack | A2APoll | Watch | AlertResolved | AlertNote | HumanEntry,
    Field(discriminator="op"),
]
HandoffStep = Deliver | HandBack
"""The steps whose final failure fails the handoff (or one hand-back)."""
FollowUp = A2APoll | Watch
"""Work that follows a delivery and reschedules itself."""

# Adaptive follow-up: a partner that finishes quickly is heard from quickly, one that takes hours is not
# polled any more often than the poll interval says.
FIRST_POLL_SECONDS = 1.0
QUICK_POLL_SECONDS = 5.0
QUICK_PHASE_SECONDS = 60.0
LATER_GAP_FRACTION = 1 / 6


def follow_up_delay(elapsed_seconds: float, interval_seconds: float) -> float:
    """Seconds until the next look at a follow-up (an A2A task polled, a thread watched) that began
    ``elapsed_seconds`` ago.

    During the first minute the gap is the time waited so far, kept between 1 and 5 seconds (looks at
    1, 2, 4, 8, 13, 18 ... s); after it, a sixth of the time waited (10 s a minute in, 20 s two minutes
    in). Never longer than the poll interval.
    """
    elapsed = max(0.0, elapsed_seconds)
    if elapsed < QUICK_PHASE_SECONDS:
        delay = min(max(elapsed, FIRST_POLL_SECONDS), QUICK_POLL_SECONDS)
    else:
        delay = elapsed * LATER_GAP_FRACTION
    return max(0.0, min(delay, interval_seconds))


WORK_KINDS: dict[str, type[Work]] = {
    kind.model_fields["op"].default: kind
    for kind in (Deliver, HandBack, A2APoll, Watch, AlertResolved, AlertNote, HumanEntry)
}
_WORK: TypeAdapter[WorkMessage] = TypeAdapter(WorkMessage)


class MalformedWork(ValueError):
    """A dequeued message that is not a work message of a known kind; ``reason`` says why."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def op_of(kind: type[Work]) -> str:
    """The ``op`` of a kind of work."""
    op = kind.model_fields["op"].default
    if not isinstance(op, str):
        raise TypeError(f"{kind.__name__} is not a kind of work")
    return op


def parse_work(data: object) -> WorkMessage:
    """The work message ``data`` is; :class:`MalformedWork` naming the first problems otherwise."""
    if not isinstance(data, dict):
        raise MalformedWork("not a JSON object")
    op = data.get("op")
    if not isinstance(op, str) or op not in WORK_KINDS:
        raise MalformedWork(f"unknown op {str(op)[:100]!r}")
    try:
        return _WORK.validate_python(data)
    except ValidationError as exc:
        problems = [
            f"{'/'.join(str(part) for part in error['loc'][1:]) or '/'}: {error['msg']}"
            for error in exc.errors(include_url=False, include_input=False)[:3]
        ]
        raise MalformedWork(f"malformed {op} message: {'; '.join(problems)}") from None
