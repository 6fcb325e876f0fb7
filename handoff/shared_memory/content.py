"""What a shared-memory write says: one :class:`Note` per (handoff, lifecycle point, sequence), rendered as
Markdown with a Mermaid diagram (GitHub), Atlassian Document Format with a diagram (Jira) or plain text
(PagerDuty, ServiceNow). Every rendering carries the write's marker so a retry can find it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from handoff.messages import OUTCOME_LABELS
from handoff.records import HandoffRecord, StoredHandback

MAX_TEXT = 60_000  # below GitHub's comment cap (65,536) and ServiceNow/PagerDuty practical limits


def write_marker(handoff_id: str, point: str, seq: int, backend: str) -> str:
    """The stable marker of one write: handoff id, lifecycle point, sequence and backend."""
    return f"handoff-memory: {handoff_id}/{point}:{seq}/{backend}"


def chain_marker(root_id: str, backend: str) -> str:
    """The marker in the body of the issue opened for one investigation chain."""
    return f"handoff-memory-chain: {root_id}/{backend}"


@dataclass(frozen=True)
class ChainStep:
    """One handoff of a chain, for the sequence diagram."""

    handoff_id: str
    source: str
    target: str
    intent: str
    title: str
    outcome: str | None


@dataclass(frozen=True)
class Note:
    """Everything a writer renders, already secret-free."""

    marker: str
    headline: str
    what: str
    who: str
    outcome: str | None
    summary: str | None
    root_cause: str | None
    actions: tuple[str, ...]
    links: tuple[tuple[str, str], ...]
    chain: tuple[ChainStep, ...] = field(default_factory=tuple)
    extra: tuple[str, ...] = ()


def build_note(
    record: HandoffRecord,
    point: str,
    seq: int,
    backend: str,
    *,
    base_url: str,
    source_label: str,
    target_label: str,
    source_thread_url: str | None,
    target_thread_url: str | None,
    chain: tuple[ChainStep, ...],
    details: dict[str, Any],
) -> Note:
    """The note for one lifecycle point of ``record`` (``seq``: the hand-back number, else 0)."""
    stored = record.stored
    context = stored.request.context
    handoff_url = f"{base_url}/api/handoffs/{stored.id}"
    links = [("Handoff", handoff_url), ("Audit", f"{handoff_url}/audit")]
    if source_thread_url:
        links.append((f"{source_label}'s thread", source_thread_url))
    if target_thread_url:
        links.append((f"{target_label}'s thread", target_thread_url))
    kind = f"{stored.request.intent}, {context.severity}"
    who = f'{source_label} handed "{context.title}" ({kind}) to {target_label}'
    handback: StoredHandback | None = next((hb for hb in record.handbacks if hb.seq == seq), None)
    outcome = summary = root_cause = None
    actions: tuple[str, ...] = ()
    extra: list[str] = []
    if point == "handedBack" and handback is not None:
        request = handback.request
        outcome = OUTCOME_LABELS.get(request.outcome, request.outcome)
        summary, root_cause = request.summary, request.root_cause
        actions = tuple(request.recommended_actions)
        headline = f"{target_label} handed back: {outcome} — {context.title}"
        what = f"{target_label} finished its investigation and handed its findings back to {source_label}."
    elif point == "delivered":
        headline = f"Handed off to {target_label} — {context.title}"
        what = f"{target_label} received the investigation and started a thread."
        summary = context.summary
    elif point == "failed":
        headline = f"Handoff to {target_label} failed — {context.title}"
        what = f"The broker could not deliver the investigation to {target_label}."
        outcome = "delivery failed"
        reason = details.get("reason") or record.state.last_error
        if reason:
            extra.append(f"Reason: {reason}")
        summary = context.summary
    else:
        headline = f"Alert resolved — {context.title}"
        what = "The alert behind this investigation resolved."
        outcome = "alert resolved"
        last = record.handbacks[-1] if record.handbacks else None
        if last is not None:
            summary, root_cause = last.request.summary, last.request.root_cause
            actions = tuple(last.request.recommended_actions)
    if context.incident:
        extra.append(
            f"Incident: {context.incident.id}" + (f" {context.incident.url}" if context.incident.url else "")
        )
    if context.resources:
        extra.append("Resources: " + ", ".join(context.resources[:10]))
    return Note(
        marker=write_marker(stored.id, point, seq, backend),
        headline=headline,
        what=what,
        who=who,
        outcome=outcome,
        summary=summary,
        root_cause=root_cause,
        actions=actions,
        links=tuple(links),
        chain=chain,
        extra=tuple(extra),
    )


# ---------------------------------------------------------------- Mermaid


def _mermaid_id(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_]", "_", name) or "agent"


def _mermaid_text(text: str) -> str:
    # ';' ends a statement and '#' starts an entity code in sequence diagrams.
    return re.sub(r"[;#\r\n]+", " ", text)[:120]


def mermaid(chain: tuple[ChainStep, ...]) -> str:
    """A Mermaid sequence diagram of the handoff chain (hand-offs and hand-backs)."""
    lines = ["sequenceDiagram"]
    seen: list[str] = []
    for step in chain:
        for agent in (step.source, step.target):
            if agent not in seen:
                seen.append(agent)
                lines.append(f"    participant {_mermaid_id(agent)} as {_mermaid_text(agent)}")
    for step in chain:
        src, dst = _mermaid_id(step.source), _mermaid_id(step.target)
        lines.append(f"    {src}->>{dst}: {_mermaid_text(step.intent + ': ' + step.title)}")
        if step.outcome:
            lines.append(f"    {dst}-->>{src}: {_mermaid_text('hand-back: ' + step.outcome)}")
    return "\n".join(lines)


# ---------------------------------------------------------------- renderings


def _cap(text: str) -> str:
    return text if len(text) <= MAX_TEXT else text[:MAX_TEXT] + "\n… (cut; see the handoff for the rest)"


def markdown(note: Note, *, diagram: bool = True) -> str:
    """GitHub-flavoured Markdown; the marker is an HTML comment (invisible, but in the body)."""
    lines = [f"### {note.headline}", "", note.what, "", f"**Who:** {note.who}"]
    if note.outcome:
        lines.append(f"**Outcome:** {note.outcome}")
    lines.append("")
    if note.summary:
        lines += ["**Summary**", "", note.summary, ""]
    if note.root_cause:
        lines += ["**Root cause**", "", note.root_cause, ""]
    if note.actions:
        lines += ["**Recommended actions**", ""] + [f"{n}. {a}" for n, a in enumerate(note.actions, 1)] + [""]
    lines += [f"- {line}" for line in note.extra]
    lines += [f"- [{label}]({url})" for label, url in note.links]
    if diagram and note.chain:
        lines += ["", "```mermaid", mermaid(note.chain), "```"]
    return _cap("\n".join(lines)) + f"\n\n<!-- {note.marker} -->"


def plain_text(note: Note) -> str:
    """Plain text for backends that take no markup (PagerDuty notes, ServiceNow journal fields)."""
    lines = [note.headline, "", note.what, f"Who: {note.who}"]
    if note.outcome:
        lines.append(f"Outcome: {note.outcome}")
    if note.summary:
        lines += ["", "Summary: " + note.summary]
    if note.root_cause:
        lines += ["", "Root cause: " + note.root_cause]
    if note.actions:
        lines += ["", "Recommended actions:"] + [f"{n}. {a}" for n, a in enumerate(note.actions, 1)]
    if note.extra:
        lines += ["", *note.extra]
    lines += ["", *(f"{label}: {url}" for label, url in note.links)]
    return _cap("\n".join(lines)) + f"\n\n[{note.marker}]"


def _text(text: str, *marks: dict[str, Any]) -> dict[str, Any]:
    node: dict[str, Any] = {"type": "text", "text": text}
    if marks:
        node["marks"] = list(marks)
    return node


def _paragraph(*content: dict[str, Any]) -> dict[str, Any]:
    return {"type": "paragraph", "content": [c for c in content if c.get("text")]}


def adf(note: Note, *, diagram: bool = True) -> dict[str, Any]:
    """An Atlassian Document Format document (version 1) for a Jira comment."""
    strong = {"type": "strong"}
    content: list[dict[str, Any]] = [
        {"type": "heading", "attrs": {"level": 3}, "content": [_text(note.headline[:1000])]},
        _paragraph(_text(note.what)),
        _paragraph(_text("Who: ", strong), _text(note.who)),
    ]
    if note.outcome:
        content.append(_paragraph(_text("Outcome: ", strong), _text(note.outcome)))
    if note.summary:
        content.append(_paragraph(_text("Summary: ", strong), _text(_cap(note.summary))))
    if note.root_cause:
        content.append(_paragraph(_text("Root cause: ", strong), _text(_cap(note.root_cause))))
    if note.actions:
        content.append(
            {
                "type": "orderedList",
                "content": [{"type": "listItem", "content": [_paragraph(_text(a))]} for a in note.actions],
            }
        )
    items = [{"type": "listItem", "content": [_paragraph(_text(line))]} for line in note.extra]
    items += [
        {
            "type": "listItem",
            "content": [_paragraph(_text(label, {"type": "link", "attrs": {"href": url}}))],
        }
        for label, url in note.links
    ]
    content.append({"type": "bulletList", "content": items})
    if diagram and note.chain:
        content.append(
            {"type": "codeBlock", "attrs": {"language": "mermaid"}, "content": [_text(mermaid(note.chain))]}
        )
    content.append(_paragraph(_text(note.marker, {"type": "code"})))
    return {"type": "doc", "version": 1, "content": content}


def adf_text(node: Any) -> str:
    """All text of an ADF document (to look for a marker in a comment read back)."""
    if isinstance(node, dict):
        own = node.get("text") if isinstance(node.get("text"), str) else ""
        return own + "".join(adf_text(child) for child in node.get("content", []) or [])
    if isinstance(node, list):
        return "".join(adf_text(child) for child in node)
    return node if isinstance(node, str) else ""
