"""What a shared-memory write says: one :class:`Note` per (handoff, lifecycle point, sequence), rendered as
Markdown with a Mermaid diagram (GitHub), Atlassian Document Format with a diagram (Jira) or plain text
(PagerDuty, ServiceNow). Every rendering carries the write's marker so a retry can find it.

A note holds caller text (titles, summaries, findings); each rendering makes it data in its own format:
escaped and quoted Markdown with GitHub's mentions and issue references broken
(:mod:`handoff.domain.markdown`), plain text with quoted blocks and ServiceNow's ``[code]`` tag and
``@[`` mention broken, ADF text nodes without line breaks (Jira makes mentions only of mention nodes).
Writers find an earlier write only on a retry, and only as the broker's own comment ending with its
marker line (:func:`handoff.domain.shared_memory.human_entries.own_marker`); still, caller text never
carries ``handoff-memory`` as such: its hyphen becomes a Markdown escape or a non-breaking hyphen
(U+2011), which reads the same.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from handoff.domain.markdown import (
    autolinks,
    fence_for,
    inline,
    lines_of,
    link,
    quote,
    quote_list,
    single_line,
    unlinked,
)
from handoff.domain.messages import OUTCOME_LABELS
from handoff.domain.records import HandoffRecord, StoredHandback

MAX_TEXT = 60_000  # below GitHub's comment cap (65,536) and ServiceNow/PagerDuty practical limits
MAX_BLOCK = 20_000  # one summary, root cause or action before rendering
_MARKER_WORD = re.compile(r"(?i)handoff-memory")
_SNOW_CODE_TAG = re.compile(r"(?i)\[(/?code)\]")
# ServiceNow makes "@[<user sys_id>:<name>]" in a journal entry a mention (a notification to that user).
_SNOW_MENTION = re.compile(r"@(?=\s*\[)")


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


@dataclass(frozen=True)
class _Story:
    """What a note says about its lifecycle point."""

    headline: str
    what: str
    outcome: str | None = None
    summary: str | None = None
    root_cause: str | None = None
    actions: tuple[str, ...] = ()
    extra: tuple[str, ...] = ()


def _with_findings(story: _Story, handback: StoredHandback | None) -> _Story:
    """``story`` with the summary, root cause and actions of ``handback`` (as it is without one)."""
    if handback is None:
        return story
    request = handback.request
    return replace(
        story,
        summary=request.summary,
        root_cause=request.root_cause,
        actions=tuple(request.recommended_actions),
    )


def _story(
    record: HandoffRecord, point: str, seq: int, source: str, target: str, details: Mapping[str, object]
) -> _Story:
    """The headline, what happened and the findings of ``point`` (``seq``: the hand-back number)."""
    context = record.stored.request.context
    handback = next((hb for hb in record.handbacks if hb.seq == seq), None)
    if point == "handedBack" and handback is not None:
        outcome = OUTCOME_LABELS.get(handback.request.outcome, handback.request.outcome)
        story = _Story(
            headline=f"{target} handed back: {outcome} — {context.title}",
            what=f"{target} finished its investigation and handed its findings back to {source}.",
            outcome=outcome,
        )
        return _with_findings(story, handback)
    if point == "delivered":
        return _Story(
            headline=f"Handed off to {target} — {context.title}",
            what=f"{target} received the investigation and started a thread.",
            summary=context.summary,
        )
    if point == "failed":
        reason = details.get("reason") or record.state.last_error
        return _Story(
            headline=f"Handoff to {target} failed — {context.title}",
            what=f"The broker could not deliver the investigation to {target}.",
            outcome="delivery failed",
            summary=context.summary,
            extra=(f"Reason: {reason}",) if reason else (),
        )
    story = _Story(
        headline=f"Alert resolved — {context.title}",
        what="The alert behind this investigation resolved.",
        outcome="alert resolved",
    )
    return _with_findings(story, record.handbacks[-1] if record.handbacks else None)


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
    details: Mapping[str, object],
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
    story = _story(record, point, seq, source_label, target_label, details)
    extra = list(story.extra)
    if context.incident:
        extra.append(
            f"Incident: {context.incident.id}" + (f" {context.incident.url}" if context.incident.url else "")
        )
    if context.resources:
        extra.append("Resources: " + ", ".join(context.resources[:10]))
    kind = f"{stored.request.intent}, {context.severity}"
    return Note(
        marker=write_marker(stored.id, point, seq, backend),
        headline=story.headline,
        what=story.what,
        who=f'{source_label} handed "{context.title}" ({kind}) to {target_label}',
        outcome=story.outcome,
        summary=story.summary,
        root_cause=story.root_cause,
        actions=story.actions,
        links=tuple(links),
        chain=chain,
        extra=tuple(extra),
    )


# ---------------------------------------------------------------- Mermaid


def _mermaid_id(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_]", "_", name) or "agent"


def _mermaid_text(text: str) -> str:
    # One line; ';' ends a statement, '#' starts an entity code, '%%' a directive, '<' '>' HTML, '`' the
    # fence around the diagram.
    cleaned = re.sub(r"[;#%<>`]+", " ", single_line(text))
    return _defang_plain(" ".join(cleaned.split()))[:120]


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


def _code_spans(line: str) -> list[tuple[int, int]]:
    """(start, end) of each code span of a Markdown line: a backtick run up to the next run as long."""
    spans, i = [], 0
    while i < len(line):
        if line[i] == "\\":
            i += 2
            continue
        if line[i] != "`":
            i += 1
            continue
        run = len(line) - i - len(line[i:].lstrip("`"))
        close = re.compile(f"(?<!`){'`' * run}(?!`)").search(line, i + run)
        if close:
            spans.append((i, close.end()))
            i = close.end()
        else:
            i += run
    return spans


def _defang_markdown_line(line: str) -> str:
    """The marker word broken in one Markdown line: in text its hyphen escaped (rendered the same), in a
    code span (where a backslash shows) a non-breaking hyphen, in a bare URL the hyphen percent-encoded
    (the link goes to the same place)."""
    code, urls = _code_spans(line), list(autolinks(line))

    def broken(match: re.Match[str]) -> str:
        word, at = match.group(), match.start()
        if any(start <= at < end for start, end in code):
            return word[:7] + "\u2011" + word[8:]
        if any(start <= at < end for start, end in urls):
            return word[:7] + "%2D" + word[8:]
        return word[:7] + "\\" + word[7:]

    return _MARKER_WORD.sub(broken, line)


def _defang_markdown(text: str) -> str:
    if not _MARKER_WORD.search(text):
        return text
    return "\n".join(_defang_markdown_line(line) for line in text.split("\n"))


def _defang_plain(text: str) -> str:
    return _MARKER_WORD.sub(lambda m: m.group()[:7] + "\u2011" + m.group()[8:], text)


def _cap(text: str, limit: int = MAX_TEXT) -> str:
    return text if len(text) <= limit else text[:limit] + "\n… (cut; see the handoff for the rest)"


def markdown(note: Note, *, diagram: bool = True) -> str:
    """GitHub-flavoured Markdown; the marker is an HTML comment (invisible, but in the body)."""
    lines = [f"### {inline(note.headline)}", "", inline(note.what), "", f"**Who:** {inline(note.who)}"]
    if note.outcome:
        lines.append(f"**Outcome:** {inline(note.outcome)}")
    lines.append("")
    if note.summary:
        lines += ["**Summary**", "", *quote(_cap(note.summary, MAX_BLOCK)), ""]
    if note.root_cause:
        lines += ["**Root cause**", "", *quote(_cap(note.root_cause, MAX_BLOCK)), ""]
    if note.actions:
        actions = [_cap(action, MAX_BLOCK) for action in note.actions]
        lines += ["**Recommended actions**", "", *quote_list(actions, numbered=True), ""]
    lines += [f"- {inline(line)}" for line in note.extra]
    # The links are the broker's own (its base URL, portal thread links): http is fine for a local broker.
    lines += [f"- {link(label, url, trusted=True)}" for label, url in note.links]
    text = _cap(_defang_markdown("\n".join(lines)))
    if diagram and note.chain:
        chart = mermaid(note.chain)
        fence = fence_for(chart)
        with_chart = f"{text}\n\n{fence}mermaid\n{chart}\n{fence}"
        text = with_chart if len(with_chart) <= MAX_TEXT else text
    return text + f"\n\n<!-- {note.marker} -->"


def _plain_block(label: str, text: str) -> list[str]:
    """``Label: text`` for one line; ``Label:`` and quoted lines for several."""
    lines = lines_of(text)
    while lines and not lines[0].strip():
        lines.pop(0)
    while lines and not lines[-1].strip():
        lines.pop()
    if len(lines) <= 1:
        return [f"{label}: {lines[0].strip() if lines else ''}".rstrip()]
    return [f"{label}:", *(f"> {line}".rstrip() for line in lines)]


def plain_text(note: Note) -> str:
    """Plain text for backends that take no markup (PagerDuty notes, ServiceNow journal fields)."""
    lines = [single_line(note.headline), "", single_line(note.what), f"Who: {single_line(note.who)}"]
    if note.outcome:
        lines.append(f"Outcome: {single_line(note.outcome)}")
    if note.summary:
        lines += ["", *_plain_block("Summary", _cap(note.summary, MAX_BLOCK))]
    if note.root_cause:
        lines += ["", *_plain_block("Root cause", _cap(note.root_cause, MAX_BLOCK))]
    if note.actions:
        lines += ["", "Recommended actions:"]
        for n, action in enumerate(note.actions, 1):
            first, *rest = _plain_block(f"{n}.", _cap(action, MAX_BLOCK))
            lines += [first.replace(f"{n}.:", f"{n}.", 1), *(f"   {line}" for line in rest)]
    if note.extra:
        lines += ["", *(single_line(line) for line in note.extra)]
    lines += ["", *(f"{single_line(label)}: {single_line(url)}" for label, url in note.links)]
    text = _SNOW_CODE_TAG.sub(lambda m: f"[\u200b{m.group(1)}]", "\n".join(lines))
    text = _SNOW_MENTION.sub("@\u200b", text)
    return _cap(_defang_plain(text)) + f"\n\n[{note.marker}]"


def _text(text: str, *marks: dict[str, Any]) -> dict[str, Any]:
    node: dict[str, Any] = {"type": "text", "text": text}
    if marks:
        node["marks"] = list(marks)
    return node


def _plain(text: str, *marks: dict[str, Any]) -> dict[str, Any]:
    """A text node of caller text: one line, no marker word."""
    return _text(_defang_plain(single_line(text)), *marks)


def _paragraph(*content: dict[str, Any]) -> dict[str, Any]:
    return {"type": "paragraph", "content": [c for c in content if c.get("text") or c["type"] != "text"]}


def _lines_paragraph(text: str) -> dict[str, Any]:
    """Multi-line caller text as one paragraph: a text node per line, hard breaks between them."""
    content: list[dict[str, Any]] = []
    for line in lines_of(_cap(text, MAX_BLOCK)):
        if content:
            content.append({"type": "hardBreak"})
        if line.strip():
            content.append(_plain(line))
    return _paragraph(*content) if content else _paragraph(_text("(empty)"))


def adf(note: Note, *, diagram: bool = True) -> dict[str, Any]:
    """An Atlassian Document Format document (version 1) for a Jira comment."""
    strong = {"type": "strong"}
    content: list[dict[str, Any]] = [
        {
            "type": "heading",
            "attrs": {"level": 3},
            "content": [_text(_defang_plain(single_line(note.headline))[:1000] or "(untitled)")],
        },
        _paragraph(_plain(note.what)),
        _paragraph(_text("Who: ", strong), _plain(note.who)),
    ]
    if note.outcome:
        content.append(_paragraph(_text("Outcome: ", strong), _plain(note.outcome)))
    if note.summary:
        content += [
            _paragraph(_text("Summary:", strong)),
            {"type": "blockquote", "content": [_lines_paragraph(note.summary)]},
        ]
    if note.root_cause:
        content += [
            _paragraph(_text("Root cause:", strong)),
            {"type": "blockquote", "content": [_lines_paragraph(note.root_cause)]},
        ]
    if note.actions:
        content.append(
            {
                "type": "orderedList",
                "content": [{"type": "listItem", "content": [_lines_paragraph(a)]} for a in note.actions],
            }
        )
    items = [{"type": "listItem", "content": [_paragraph(_plain(line))]} for line in note.extra]
    items += [
        {
            "type": "listItem",
            "content": [_paragraph(_plain(label, {"type": "link", "attrs": {"href": url}}))],
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


def chain_issue(title: str, summary: str, needle: str) -> dict[str, str]:
    """Title and body of the GitHub issue opened for one investigation chain: the root handoff's title
    (one line) and summary (quoted), and the chain marker ``needle`` as an HTML comment."""
    lines = [
        "Shared memory of a handoff investigation: each step of the chain adds a comment below.",
        "",
        *quote(summary[:4000]),
    ]
    return {
        # Plain text: the zero-width space itself, not its entity.
        "title": unlinked(_defang_plain(single_line(f"Investigation: {title}")), plain=True)[:250],
        "body": _defang_markdown("\n".join(lines)) + f"\n\n<!-- {needle} -->",
    }


def adf_text(node: Any) -> str:
    """All text of an ADF document, one text node per line (to look for a marker in a comment read
    back; a marker is one text node, never two texts that happen to meet)."""
    if isinstance(node, dict):
        own = [node["text"]] if isinstance(node.get("text"), str) else []
        children = [adf_text(child) for child in node.get("content", []) or []]
        return "\n".join(part for part in [*own, *children] if part)
    if isinstance(node, list):
        return "\n".join(part for part in (adf_text(child) for child in node) if part)
    return node if isinstance(node, str) else ""
