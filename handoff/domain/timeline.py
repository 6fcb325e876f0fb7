"""A picture of one investigation: every handoff of its chain and their audit events as a sequence diagram.

:func:`sequence` turns the chain's handoffs and audit events into a :class:`SequenceDiagram`: the agents,
the broker (and Azure Monitor, for alert-started chains) as participants, and one message or note per
event in time order, each label starting with its time (UTC, ``HH:MM:SS``). :func:`to_mermaid` writes it
as a Mermaid ``sequenceDiagram``; :mod:`handoff.domain.timeline_svg` draws it as SVG.

Labels carry caller text (titles, summaries, reasons, authors, alert rules). :func:`safe_label` keeps each
piece to one short line of letters, digits, spaces and a little punctuation, so caller text cannot end a
Mermaid statement (newline, ``;``), start a comment or directive (``%%{init}``), an entity code (``#``),
HTML (``<``) or an arrow (``>``); with no line break it can never start a statement such as ``click``.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import Any, Literal

from handoff.domain.audit_events import EventType
from handoff.domain.models import AuditEvent, WireModel
from handoff.domain.records import HandoffRecord
from handoff.domain.registry import SYSTEM_SOURCES

LABEL_MAX = 80  # characters of one piece of caller text in a label
MAX_STEPS = 500  # messages and notes in one diagram; a last note counts the events left out
MERMAID_CONTENT_TYPE = "text/vnd.mermaid"
BROKER = "B"
MONITOR = "M"

_UNSAFE = re.compile(r"[^\w .,:/()'?!@=+*-]")
_DASHES = re.compile(r"-{2,}")
_FIELD = re.compile(r"\{(\w+)\}")
# Events too fine-grained for the picture (their outcome has an event of its own).
_LEFT_OUT = frozenset({
    EventType.SHARED_MEMORY_QUEUED, EventType.SHARED_MEMORY_SKIPPED, EventType.SHARED_MEMORY_ATTEMPT,
    EventType.SHARED_MEMORY_WARNING, EventType.SHARED_MEMORY_RETRY_SCHEDULED,
    EventType.SHARED_MEMORY_REQUEUED,
})  # fmt: skip
_ALERT_EVENTS = frozenset({
    EventType.ALERT_FIRED, EventType.ALERT_JOINED_STORM, EventType.ALERT_REFIRED, EventType.ALERT_RESOLVED,
    EventType.ALERT_RESOLVED_AGAIN,
})  # fmt: skip


def safe_label(value: object, limit: int = LABEL_MAX) -> str:
    """``value`` as label text: one line of letters, digits, spaces and ``.,:/()'?!@=+*-`` (other
    characters become spaces, runs of ``-`` one ``-``), at most ``limit`` characters (``...`` marks a cut)."""
    text = _DASHES.sub("-", _UNSAFE.sub(" ", str(value)))
    text = " ".join(text.split())
    if len(text) > limit:
        text = text[: max(limit - 3, 1)].rstrip() + "..."
    return text


def short_id(handoff_id: str) -> str:
    """The first eight characters of a handoff id: enough to tell the handoffs of one chain apart."""
    return safe_label(handoff_id[:8], 8)


# ---------------------------------------------------------------- what the diagram is drawn from


@dataclass(frozen=True)
class ChainHandoff:
    """One handoff of the chain, as the timeline draws it: who handed off to whom, and its audit."""

    id: str
    source: str
    target: str
    parent_id: str | None
    status: str
    intent: str
    title: str
    created_at: datetime
    events: tuple[AuditEvent, ...] = ()
    handback_summaries: Mapping[int, str] = field(default_factory=dict)

    @classmethod
    def of(cls, record: HandoffRecord, events: Iterable[AuditEvent]) -> ChainHandoff:
        """The handoff of a stored record with its audit events."""
        stored = record.stored
        return cls(
            id=stored.id,
            source=stored.source_agent,
            target=stored.target_agent,
            parent_id=stored.request.parent_handoff_id,
            status=record.state.status,
            intent=stored.request.intent,
            title=stored.request.context.title,
            created_at=stored.created_at,
            events=tuple(events),
            handback_summaries={hb.seq: hb.request.summary for hb in record.handbacks},
        )

    @property
    def from_system(self) -> bool:
        """Whether the broker started this handoff itself (from an alert)."""
        return self.source in SYSTEM_SOURCES


@dataclass(frozen=True)
class ChainTimeline:
    """The chain a handoff belongs to: its root and every child, oldest first, each with its audit."""

    handoff_id: str
    root_id: str
    handoffs: tuple[ChainHandoff, ...]


class TimelineMember(WireModel):
    """One handoff of the chain in the JSON timeline."""

    id: str
    source: str
    target: str
    parent_handoff_id: str | None = None
    status: str
    created_at: datetime


class TimelineView(WireModel):
    """Body of ``GET /api/handoffs/{id}/timeline?format=json``: the chain's handoffs and the diagram."""

    handoff_id: str
    root_handoff_id: str
    handoffs: list[TimelineMember]
    mermaid: str


# ---------------------------------------------------------------- the diagram

Style = Literal["solid", "dashed", "failed"]
Role = Literal["source", "target", "broker", "monitor", "agents"]


@dataclass(frozen=True)
class Participant:
    """A column of the diagram: ``key`` names it in Mermaid, ``label`` is what it shows."""

    key: str
    label: str


@dataclass(frozen=True)
class Message:
    """An arrow from one participant to another."""

    sender: str
    receiver: str
    label: str
    style: Style = "solid"


@dataclass(frozen=True)
class Note:
    """A note over one participant, or spanning from the first of ``over`` to the last."""

    over: tuple[str, ...]
    label: str


Step = Message | Note


@dataclass(frozen=True)
class SequenceDiagram:
    """Participants left to right, then messages and notes top to bottom."""

    participants: tuple[Participant, ...]
    steps: tuple[Step, ...]


class _Cast:
    """The participants of a chain: Azure Monitor (alert-started chains), the root's source, the broker,
    then every other agent in the order the chain reached it."""

    def __init__(self, handoffs: tuple[ChainHandoff, ...]) -> None:
        self.keys: dict[str, str] = {}
        self.participants: list[Participant] = []
        alerted = any(h.from_system or any(e.type in _ALERT_EVENTS for e in h.events) for h in handoffs)
        if alerted:
            self.participants.append(Participant(MONITOR, SYSTEM_SOURCES["azure-monitor"]))
        for index, handoff in enumerate(handoffs):
            if not handoff.from_system:
                self._agent(handoff.source)
            if index == 0:
                self.participants.append(Participant(BROKER, "Broker"))
            self._agent(handoff.target)
        if not handoffs:
            self.participants.append(Participant(BROKER, "Broker"))

    def _agent(self, name: str) -> None:
        if name not in self.keys:
            self.keys[name] = f"A{len(self.keys) + 1}"
            self.participants.append(Participant(self.keys[name], safe_label(name, 64) or "agent"))

    def key(self, role: Role, handoff: ChainHandoff) -> str:
        """The participant playing ``role`` in ``handoff``."""
        if role == "broker":
            return BROKER
        if role == "monitor" or (role == "source" and handoff.from_system):
            return MONITOR
        return self.keys[handoff.target if role == "target" else handoff.source]


@dataclass(frozen=True)
class _Event:
    """One audit event of one handoff, with what labels need of it."""

    event: AuditEvent
    handoff: ChainHandoff

    def detail(self, name: str, limit: int = LABEL_MAX) -> str:
        value: Any = self.event.details.get(name)
        return "" if value is None else safe_label(value, limit)

    @property
    def time(self) -> str:
        return self.event.at.astimezone(UTC).strftime("%H:%M:%S")


# Who sends, who receives (the same: a note over it), the arrow, and the label: a function of the event,
# or a template whose ``{name}`` is that detail of the event, made safe.
Rule = tuple[Role, Role, Style, "str | Callable[[_Event], str]"]


def _accepted(e: _Event) -> str:
    h = e.handoff
    parent = f", continues {short_id(h.parent_id)}" if h.parent_id else ""
    return (
        f"handoff {short_id(h.id)} ({safe_label(h.intent, 20)}) to {safe_label(h.target, 64)}{parent}: "
        f"{safe_label(h.title, 60)}"
    )


def _handback(e: _Event) -> str:
    seq = e.event.details.get("seq")
    summary = e.handoff.handback_summaries.get(seq, "") if isinstance(seq, int) else ""
    kind = "automatic hand-back" if e.event.details.get("automatic") else "hand-back"
    return f"{kind} {e.detail('seq', 6)} ({e.detail('outcome', 30)}): {safe_label(summary, 60)}"


def _retry(e: _Event) -> str:
    return (
        f"retry {e.detail('op', 20)} in {e.detail('delaySeconds', 8)}s "
        f"(attempt {e.detail('attempt', 6)} failed: {e.detail('reason')})"
    )


def _retry_requested(e: _Event) -> str:
    steps = e.event.details.get("steps")
    names = [
        " ".join(str(step[key]) for key in ("step", "seq") if key in step)
        for step in (steps if isinstance(steps, list) else [])
        if isinstance(step, dict)
    ]
    what = ", ".join(names) or "nothing failed"
    return f"retry requested by {safe_label(e.event.actor, 40)}: {safe_label(what)}"


def _delivered(e: _Event) -> str:
    where = e.detail("threadId", 64) or e.detail("taskId", 64)
    return f"delivered {short_id(e.handoff.id)}" + (f", thread {where}" if where else "")


def _human(kind: str) -> Callable[[_Event], str]:
    return lambda e: f"human {kind} by {safe_label(e.event.actor, 40)} ({e.detail('backend', 20)})"


def _filled(template: str, e: _Event) -> str:
    """``template`` with each ``{name}`` replaced by that detail of the event, made safe."""
    return _FIELD.sub(lambda match: e.detail(match.group(1)), template)


_RULES: dict[str, Rule] = {
    EventType.ACCEPTED: ("source", "broker", "solid", _accepted),
    EventType.CHAIN_REFUSED: ("broker", "broker", "solid", "refused {source} to {target}: {rule} limit"),
    EventType.DELIVERY_ATTEMPT: ("broker", "target", "solid", "delivery attempt {attempt} ({mode})"),
    EventType.DELIVERY_RECOVERED: ("target", "target", "solid", "found what an earlier attempt opened"),
    EventType.DELIVERED: ("broker", "target", "solid", _delivered),
    EventType.DELIVERY_FAILED: ("broker", "target", "failed", "delivery failed: {reason}"),
    EventType.CROSS_LINKED: ("broker", "source", "dashed", "cross-link to the target's thread"),
    EventType.CROSS_LINK_FAILED: ("broker", "source", "failed", "cross-link failed: {reason}"),
    EventType.HAND_BACK_RECEIVED: ("target", "broker", "solid", _handback),
    EventType.HANDED_BACK: ("broker", "source", "dashed", "hand-back {seq} posted"),
    EventType.HAND_BACK_FAILED: ("broker", "source", "failed", "hand-back {seq} failed: {reason}"),
    EventType.RETRY_SCHEDULED: ("broker", "target", "failed", _retry),
    EventType.REDELIVERY_SCHEDULED: ("broker", "broker", "solid", "sweeper queued {op} again"),
    EventType.RETRY_REQUESTED: ("broker", "broker", "solid", _retry_requested),
    EventType.WORK_REJECTED: ("broker", "broker", "solid", "refused a malformed work message"),
    EventType.REMOTE_TASK_STATE: ("target", "broker", "dashed", "task {state}"),
    EventType.REMOTE_INPUT_REQUIRED: ("target", "broker", "dashed", "input required: {detail}"),
    EventType.REMOTE_FAILED: ("target", "broker", "failed", "task failed: {reason}{detail}"),
    EventType.REMOTE_REJECTED: ("target", "broker", "failed", "task rejected: {detail}"),
    EventType.REMOTE_CANCELED: ("target", "broker", "failed", "task canceled: {detail}"),
    EventType.WATCH_STARTED: ("target", "target", "solid", "watching the thread for a final reply"),
    EventType.WATCH_ENDED: ("target", "target", "solid", "watch ended"),
    EventType.WATCH_EXPIRED: ("target", "target", "solid", "watch expired"),
    EventType.WATCH_STOPPED: ("target", "target", "solid", "watch stopped: {reason}"),
    EventType.REPLY_COMPLETE: ("target", "target", "solid", "reply complete"),
    EventType.ALERT_FIRED: ("monitor", "broker", "solid", "alert fired: {alertRule} ({severity})"),
    EventType.ALERT_JOINED_STORM: ("monitor", "broker", "solid", "alert joined the storm: {alertRule}"),
    EventType.ALERT_REFIRED: ("monitor", "broker", "solid", "alert fired again: {alertRule}"),
    EventType.ALERT_RESOLVED: ("monitor", "broker", "solid", "alert resolved: {alertRule}"),
    EventType.ALERT_RESOLVED_AGAIN: ("monitor", "broker", "solid", "alert resolved again: {alertRule}"),
    EventType.ALERT_NOTE_POSTED: ("broker", "target", "dashed", "alert note posted ({kind})"),
    EventType.ALERT_NOTE_FAILED: ("broker", "target", "failed", "alert note failed: {reason}"),
    EventType.ALERT_RESOLVED_POSTED: ("broker", "target", "dashed", "alert resolution posted"),
    EventType.HUMAN_NOTE: ("agents", "agents", "solid", _human("note")),
    EventType.HUMAN_OVERRIDE: ("agents", "agents", "solid", _human("override")),
    EventType.HUMAN_ENTRY_POSTED: ("broker", "target", "dashed", "human note posted"),
    EventType.HUMAN_ENTRY_FAILED: ("broker", "target", "failed", "human note failed: {reason}"),
    EventType.SHARED_MEMORY_WRITTEN: ("broker", "broker", "solid", "shared memory: {backend} ({point})"),
    EventType.SHARED_MEMORY_FAILED: ("broker", "broker", "solid", "shared memory failed: {backend}"),
    EventType.SHARED_MEMORY_REPLAY_SCHEDULED: ("broker", "broker", "solid", "shared memory replay"),
}


def _rule(e: _Event) -> Rule:
    """The rule for an event, with the cases a table cannot say."""
    details = e.event.details
    if e.event.type == EventType.HANDED_BACK and details.get("posted") is False:
        return ("broker", "broker", "solid", "hand-back {seq} kept (no source thread)")
    if e.event.type == EventType.RETRY_SCHEDULED and details.get("op") == "handback":
        return ("broker", "source", "failed", _retry)
    if e.event.type not in _RULES:
        return ("broker", "broker", "solid", lambda e: safe_label(e.event.type, 40))
    return _RULES[e.event.type]


def _step(e: _Event, cast: _Cast) -> Step:
    sender, receiver, style, label = _rule(e)
    text = " ".join(f"{e.time} {label(e) if callable(label) else _filled(label, e)}".split())
    if sender == "agents":
        over = (cast.key("source", e.handoff), cast.key("target", e.handoff))
        return Note(over=over, label=text)
    first, second = cast.key(sender, e.handoff), cast.key(receiver, e.handoff)
    if first == second:
        return Note(over=(first,), label=text)
    return Message(first, second, text, style)


def sequence(timeline: ChainTimeline) -> SequenceDiagram:
    """The chain's audit events as a sequence diagram, in time order (a note marks each new UTC day)."""
    handoffs = timeline.handoffs
    cast = _Cast(handoffs)
    order = {h.id: index for index, h in enumerate(handoffs)}
    events = sorted(
        (_Event(event, h) for h in handoffs for event in h.events if event.type not in _LEFT_OUT),
        key=lambda e: (e.event.at, order[e.handoff.id], e.event.seq),
    )
    steps: list[Step] = []
    day: date | None = None
    for index, e in enumerate(events):
        if len(steps) >= MAX_STEPS:
            left = len(events) - index
            steps.append(Note((BROKER,), f"{left} more events not shown: see each handoff's audit"))
            break
        today = e.event.at.astimezone(UTC).date()
        if today != day:
            day = today
            steps.append(Note((BROKER,), f"{today.isoformat()} (UTC), chain {short_id(timeline.root_id)}"))
        steps.append(_step(e, cast))
    return SequenceDiagram(participants=tuple(cast.participants), steps=tuple(steps))


_ARROWS: dict[Style, str] = {"solid": "->>", "dashed": "-->>", "failed": "-x"}


def to_mermaid(diagram: SequenceDiagram) -> str:
    """The diagram as Mermaid ``sequenceDiagram`` source (labels are already safe)."""
    lines = ["sequenceDiagram"]
    lines += [f"    participant {p.key} as {safe_label(p.label, 64)}" for p in diagram.participants]
    for step in diagram.steps:
        if isinstance(step, Message):
            arrow = _ARROWS[step.style]
            lines.append(f"    {step.sender}{arrow}{step.receiver}: {safe_label(step.label, 200)}")
        else:
            lines.append(f"    Note over {','.join(step.over)}: {safe_label(step.label, 200)}")
    return "\n".join(lines) + "\n"


def timeline_view(timeline: ChainTimeline, diagram: SequenceDiagram) -> TimelineView:
    """The JSON answer: the chain's handoffs and the Mermaid source."""
    return TimelineView(
        handoff_id=timeline.handoff_id,
        root_handoff_id=timeline.root_id,
        handoffs=[
            TimelineMember(
                id=h.id,
                source=h.source,
                target=h.target,
                parent_handoff_id=h.parent_id,
                status=h.status,
                created_at=h.created_at,
            )
            for h in timeline.handoffs
        ],
        mermaid=to_mermaid(diagram),
    )
