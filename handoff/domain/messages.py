"""Messages the broker writes into agents' threads: readable by a person, structured for a model.

Every message starts with ``[Handoff <id>]`` and ends with a marker line, so a redelivery can find
what an earlier attempt already posted. Caller text is rendered as data (:mod:`handoff.domain.markdown`):
single-line values escaped on a line the broker starts, multi-line values quoted, links https only.
So neither the header, a heading nor a marker line can come from a caller, and the duplicate
detection (:func:`is_marked`, :func:`is_handoff_thread`) trusts only a message's first and last line.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote as percent_encode

from handoff.domain.markdown import (
    HIDDEN_CHARACTERS,
    cell,
    code,
    fence_for,
    inline,
    link,
    quote,
    quote_code,
    quote_list,
    single_line,
    url_or_text,
)
from handoff.domain.records import HandoffRecord, StoredHandback
from handoff.domain.seen_before import human_note_lines

__all__ = ["fence_for"]

PORTAL_BASE = "https://sre.azure.com"
MARKER_PREFIX = "handoff-ref:"
OUTCOME_LABELS = {
    "rootCauseFound": "root cause found",
    "mitigated": "mitigated",
    "needsAction": "needs action",
    "unableToDetermine": "unable to determine",
    "declined": "declined",
    "reported": "reported",
}
_STRING_CAPS = (4096, 1024, 256)
# Inside the json block every string stays on its line and no reader reorders it: JSON escapes for
# what json.dumps leaves raw (DEL and C1 controls, LS/PS, and the hidden characters of domain.markdown).
_JSON_RAW = re.compile(f"[\x7f-\x9f\u2028\u2029{HIDDEN_CHARACTERS}]")


def thread_url(resource_id: str | None, thread_id: str | None) -> str | None:
    """Portal deep link to an agent's thread (the thread id percent-encoded as one path segment)."""
    if not resource_id or not thread_id:
        return None
    return f"{PORTAL_BASE}/agents{resource_id}/views/thread/{percent_encode(thread_id, safe='')}"


def _marker_part(text: str) -> str:
    # Letters, digits, ':', '.' and '-' as they are, anything else percent-encoded: a marker is one
    # line of plain characters even when a step names something an agent chose (an approval id).
    return "".join(
        ch
        if ch.isascii() and (ch.isalnum() or ch in ":.-")
        else "".join(f"%{b:02X}" for b in ch.encode("utf-8", "surrogatepass"))
        for ch in text
    )


def marker(handoff_id: str, step: str) -> str:
    """The line that identifies one message of one handoff (``step``: start, crosslink, handback:N)."""
    return f"{MARKER_PREFIX} {_marker_part(handoff_id)}/{_marker_part(step)}"


def header(handoff_id: str, rest: str) -> str:
    """The first line of every message: ``[Handoff <id>] <rest>`` (``rest`` already rendered)."""
    return f"[Handoff {handoff_id}] {rest.strip() or '(untitled)'}"


def _ends(text: str) -> tuple[str, str]:
    lines = [line.strip() for line in str(text).strip().splitlines()]
    return (lines[0], lines[-1]) if lines else ("", "")


def is_marked(text: str, marker_line: str) -> bool:
    """Whether ``text`` is the broker's message with ``marker_line``: its last line is exactly the marker
    and its first line is the header of the marker's handoff. Caller text never starts or ends a
    message, so a marker quoted anywhere else does not count."""
    handoff_id = marker_line.removeprefix(MARKER_PREFIX).strip().split("/", 1)[0]
    first, last = _ends(text)
    return bool(handoff_id) and last == marker_line and first.startswith(f"[Handoff {handoff_id}]")


def _opens_with(text: str, handoff_id: str) -> bool:
    first = _ends(text)[0]
    for prefix in (f"[Handoff {handoff_id}]", f"Handoff {handoff_id}"):
        if first.startswith(prefix):
            rest = first[len(prefix) :]
            return not rest or not (rest[0].isalnum() or rest[0] in "-_")
    return False


def is_handoff_thread(handoff_id: str, title: object, start_text: object, *, trigger: bool = False) -> bool:
    """Whether a thread is the one the broker opened for ``handoff_id``.

    Opened with a start message: the message's first line is the handoff's header and its last line is
    its ``start`` marker. Opened through an HTTP trigger: the prompt's first line starts with
    ``Handoff <id>`` or ``[Handoff <id>]`` (the trigger prompt must begin with the handoff id). When
    the agent lists no start message, the thread title must start with the header."""
    if start_text:
        if trigger:
            return _opens_with(str(start_text), handoff_id)
        return is_marked(str(start_text), marker(handoff_id, "start"))
    return (
        _opens_with(str(title or ""), handoff_id)
        if trigger
        else str(title or "").strip().startswith(f"[Handoff {handoff_id}]")
    )


def json_text(value: object, indent: int | None = None) -> str:
    """JSON for a fenced block: exact (``json.loads`` gives ``value`` back), one string per line."""
    text = json.dumps(value, ensure_ascii=False, indent=indent)
    return _JSON_RAW.sub(lambda m: _json_escape(m.group()), text)


def _json_escape(char: str) -> str:
    """``char`` as JSON \\u escapes (a surrogate pair beyond the Basic Multilingual Plane)."""
    code = ord(char)
    if code <= 0xFFFF:
        return f"\\u{code:04x}"
    code -= 0x10000
    return f"\\u{0xD800 + (code >> 10):04x}\\u{0xDC00 + (code & 0x3FF):04x}"


def quote_line(value: object) -> str:
    """A single-line value as a one-line block quote."""
    text = inline(value)
    return f"> {text}" if text else ">"


@dataclass(frozen=True)
class MessageContext:
    """What rendering needs besides the handoff: names, links and the size budget."""

    base_url: str
    source_label: str
    target_label: str
    target_agent_name: str
    source_thread_url: str | None
    target_thread_url: str | None
    budget_bytes: int
    # Earlier investigations of the same resources ("seen before"), newest first; see
    # HistoryIndex.recent_for_resources. Only the start message shows them.
    seen_before: tuple[dict[str, Any], ...] = ()


def _kql_table(columns: list[str], rows: list[list[Any]]) -> list[str]:
    if not columns:
        return []
    lines = ["| " + " | ".join(cell(c) for c in columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in rows]
    return lines


def _render_evidence(evidence: list[dict[str, Any]], full_url: str) -> list[str]:
    lines: list[str] = []
    for item in evidence:
        kind = item["kind"]
        title = item.get("title")
        if kind == "kql":
            lines.append(f"### KQL: {inline(title)}")
            lines += quote_code(item["query"], "kusto")
            table = _kql_table(item.get("columns", []), item.get("rows", []))
            lines += ["", *table] if table else []
            if item.get("truncatedRows"):
                lines += [
                    "",
                    f"_{item['truncatedRows']} more rows cut to fit this message; all rows: {full_url}_",
                ]
        elif kind == "link":
            lines.append(f"- {link(title, item['url'])}")
        elif kind == "note":
            lines.append(f"**Note: {inline(title)}**" if title and inline(title) else "**Note:**")
            lines += quote(item["content"])
        else:
            data = json_text(item.get("data", {}), indent=2)
            lines += [f"### Data: {inline(title)}", *quote_code(data, "json")]
        lines.append("")
    return lines


def _cut_rows(context: dict[str, Any]) -> bool:
    """Halve the largest KQL table; False when there is nothing left to cut."""
    tables = [e for e in context.get("evidence", []) if e["kind"] == "kql" and e.get("rows")]
    if not tables:
        return False
    largest = max(tables, key=lambda e: len(json.dumps(e["rows"], ensure_ascii=False)))
    keep = len(largest["rows"]) // 2
    largest["truncatedRows"] = largest.get("truncatedRows", 0) + len(largest["rows"]) - keep
    largest["rows"] = largest["rows"][:keep]
    return True


def _cut_strings(value: Any, cap: int) -> tuple[Any, bool]:
    if isinstance(value, str) and len(value) > cap:
        return value[:cap] + f" … [{len(value) - cap} characters cut]", True
    if isinstance(value, list):
        changed = False
        for index, item in enumerate(value):
            value[index], cut = _cut_strings(item, cap)
            changed |= cut
        return value, changed
    if isinstance(value, dict):
        changed = False
        for key in value:
            value[key], cut = _cut_strings(value[key], cap)
            changed |= cut
        return value, changed
    return value, False


def start_message(record: HandoffRecord, ctx: MessageContext) -> str:
    """The first message of B's thread: the whole handoff, cut to the size budget if needed."""
    context = record.stored.request.context.to_wire()
    text = _render_start(record, ctx, context, cut=False)
    caps = iter(_STRING_CAPS)
    while len(text.encode()) > ctx.budget_bytes:
        if not _cut_rows(context):
            cap = next(caps, None)
            if cap is None:
                break
            _cut_strings(context, cap)
        text = _render_start(record, ctx, context, cut=True)
    return text


def _render_start(record: HandoffRecord, ctx: MessageContext, context: dict[str, Any], *, cut: bool) -> str:
    stored = record.stored
    request = stored.request
    handoff_url = f"{ctx.base_url}/api/handoffs/{stored.id}"
    source_link = f" — {link('thread', ctx.source_thread_url)}" if ctx.source_thread_url else ""
    lines = [
        header(stored.id, inline(context["title"])),
        "",
        f"**Severity:** {inline(context['severity'])} · **Intent:** {inline(request.intent)} · "
        f"**From:** {inline(ctx.source_label)}{source_link}",
    ]
    incident = context.get("incident")
    if incident:
        where = f" ({inline(incident['platform'])})" if incident.get("platform") else ""
        url = f" — {link('incident', incident['url'])}" if incident.get("url") else ""
        lines.append(f"**Incident:** {code(incident['id'])}{where}{url}")
    if request.correlation_id:
        lines.append(f"**Correlation id:** {code(request.correlation_id)}")
    if stored.depth:
        lines.append(f"**Chain:** step {stored.depth + 1}, parent handoff {code(request.parent_handoff_id)}")
    lines += ["", "## Summary", *quote(context["summary"]), ""]
    if context.get("resources"):
        lines += ["## Resources", *(f"- {code(resource)}" for resource in context["resources"]), ""]
    if ctx.seen_before:
        lines += seen_before_section(ctx.seen_before, ctx.base_url)
    if context.get("evidence"):
        lines += ["## Evidence", *_render_evidence(context["evidence"], handoff_url)]
    if context.get("hypotheses"):
        lines += ["## Hypotheses", *quote_list(context["hypotheses"]), ""]
    if context.get("actionsTaken"):
        lines += ["## Actions already taken", *quote_list(context["actionsTaken"]), ""]
    if cut:
        lines += [f"_Some content was cut to fit this message. Full context: GET {handoff_url}_", ""]
    example = {
        "agent": ctx.target_agent_name,
        "threadId": "<this thread id>",
        "outcome": "rootCauseFound | mitigated | needsAction | unableToDetermine | declined",
        "summary": "...",
        "rootCause": "...",
        "recommendedActions": ["..."],
    }
    lines += [
        "## How to hand back",
        f"When you have findings, hand them back to {inline(ctx.source_label)}: "
        f"`POST {handoff_url}/handback` with JSON {code(json.dumps(example))} "
        f"(or the MCP tool `handoff_hand_back` with handoffId `{stored.id}`). "
        f"Handoff id: {stored.id}. Full context: GET {handoff_url}",
        "",
        "## Payload",
    ]
    payload = {
        "handoffId": stored.id,
        "intent": request.intent,
        "source": {"agent": stored.source_agent, "threadId": request.source.thread_id,
                   "threadUrl": ctx.source_thread_url},
        "target": {"agent": stored.target_agent},
        "parentHandoffId": request.parent_handoff_id,
        "correlationId": request.correlation_id,
        "context": context,
        "handoffUrl": handoff_url,
        "handbackUrl": f"{handoff_url}/handback",
    }  # fmt: skip
    body = json_text(payload, indent=1)
    fence = fence_for(body)
    lines += [f"{fence}json", body, fence, "", marker(stored.id, "start")]
    return "\n".join(lines)


def trigger_payload(record: HandoffRecord, ctx: MessageContext) -> dict[str, Any]:
    """Body for an HTTP-trigger delivery: flat fields for ``{payload.x}`` placeholders plus the context.

    The flat text fields go into a trigger prompt as they are, so they are single lines (escaped like
    any caller text on a line the broker starts); ``message`` and ``context`` carry the rest."""
    stored = record.stored
    context = stored.request.context
    handoff_url = f"{ctx.base_url}/api/handoffs/{stored.id}"
    thread_id = stored.request.source.thread_id
    return {
        "handoffId": stored.id,
        "title": inline(context.title),
        "summary": inline(context.summary),
        "severity": context.severity,
        "intent": stored.request.intent,
        "sourceAgent": stored.source_agent,
        "sourceThreadId": single_line(thread_id) if thread_id else None,
        "sourceThreadUrl": ctx.source_thread_url,
        "handoffUrl": handoff_url,
        "handbackUrl": f"{handoff_url}/handback",
        "message": start_message(record, ctx),
        "context": context.to_wire(),
    }


def _where(ctx: MessageContext) -> str:
    return url_or_text(ctx.target_thread_url) if ctx.target_thread_url else "(thread link not available)"


def crosslink_message(record: HandoffRecord, ctx: MessageContext) -> str:
    """Posted into A's thread once B's thread exists."""
    stored = record.stored
    target = inline(ctx.target_label)
    return "\n".join(
        [
            header(stored.id, f"Handed off to {target}: {inline(stored.request.context.title)}"),
            "",
            f"{target} is now investigating in its thread: {_where(ctx)}",
            f"Status and audit: {ctx.base_url}/api/handoffs/{stored.id}",
            "",
            marker(stored.id, "crosslink"),
        ]
    )


def handback_message(record: HandoffRecord, handback: StoredHandback, ctx: MessageContext) -> str:
    """Posted into A's thread when B hands back its findings."""
    stored = record.stored
    request = handback.request
    target = inline(ctx.target_label)
    lines = [
        header(
            stored.id,
            f"Hand-back from {target}: {OUTCOME_LABELS[request.outcome]} — "
            f"{inline(stored.request.context.title)}",
        ),
        "",
        f"**Outcome:** {request.outcome}",
        "",
    ]
    if handback.automatic:
        lines += [
            f"_{target} did not hand back itself; this is its final reply, handed back "
            "automatically by the broker._",
            "",
        ]
    lines += ["## Summary", *quote(request.summary), ""]
    if request.root_cause:
        lines += ["## Root cause", *quote(request.root_cause), ""]
    if request.recommended_actions:
        lines += ["## Recommended actions", *quote_list(request.recommended_actions, numbered=True), ""]
    if request.evidence:
        evidence = [item.to_wire() for item in request.evidence]
        lines += ["## Evidence", *_render_evidence(evidence, f"{ctx.base_url}/api/handoffs/{stored.id}")]
    if ctx.target_thread_url:
        lines.append(f"{target}'s thread: {_where(ctx)}")
    lines += [
        f"Handoff: {ctx.base_url}/api/handoffs/{stored.id}",
        "",
        marker(stored.id, f"handback:{handback.seq}"),
    ]
    return "\n".join(lines)


def handback_text(outcome: str, summary: str, root_cause: str | None) -> str:
    """The Markdown text part of a hand-back artifact an A2A caller reads: the findings as data."""
    lines = [f"**Outcome:** {inline(outcome)}", "", "**Summary:**", *quote(summary)]
    if root_cause:
        lines += ["", "**Root cause:**", *quote(root_cause)]
    return "\n".join(lines)


# ---------------------------------------------------------------- follow-up (A2A tasks, watched threads)

REMOTE_STATUS_TEXT = {
    "inputRequired": "needs input before it can go on",
    "failed": "could not complete the investigation",
    "rejected": "rejected the handoff",
    "canceled": "canceled the investigation",
}


def a2a_payload(record: HandoffRecord, ctx: MessageContext) -> dict[str, Any]:
    """The structured ``data`` part sent to an A2A agent: the handoff with the links to answer it."""
    stored = record.stored
    handoff_url = f"{ctx.base_url}/api/handoffs/{stored.id}"
    return {
        "handoffId": stored.id,
        "rootHandoffId": stored.root_id,
        "intent": stored.request.intent,
        "source": {"agent": stored.source_agent, "threadId": stored.request.source.thread_id,
                   "threadUrl": ctx.source_thread_url},
        "target": {"agent": stored.target_agent},
        "parentHandoffId": stored.request.parent_handoff_id,
        "correlationId": stored.request.correlation_id,
        "context": stored.request.context.to_wire(),
        "handoffUrl": handoff_url,
        "handbackUrl": f"{handoff_url}/handback",
        "handbackFields": ["outcome", "summary", "rootCause", "recommendedActions", "evidence"],
    }  # fmt: skip


def remote_status_message(record: HandoffRecord, ctx: MessageContext, status: str, detail: str) -> str:
    """Posted into A's thread when an A2A target's task ends without a result (or needs input)."""
    stored = record.stored
    what = REMOTE_STATUS_TEXT.get(status) or inline(status)
    lines = [
        header(stored.id, f"{inline(ctx.target_label)} {what}: {inline(stored.request.context.title)}"),
        "",
        f"**Status:** {inline(status)}",
    ]
    if single_line(detail):
        lines += ["", quote_line(detail)]
    lines += [
        "",
        f"Handoff: {ctx.base_url}/api/handoffs/{stored.id}",
        "",
        marker(stored.id, f"remote:{status}"),
    ]
    return "\n".join(lines)


def watch_notice_message(record: HandoffRecord, ctx: MessageContext, kind: str, text: str, ref: str) -> str:
    """Posted into A's thread when B waits for an approval or an answer, so automatic hand-back stops."""
    stored = record.stored
    waits_for = "an approval" if kind == "approval" else "an answer to a question"
    target = inline(ctx.target_label)
    return "\n".join(
        [
            header(
                stored.id,
                f"{target} is waiting for {waits_for}: {inline(stored.request.context.title)}",
            ),
            "",
            quote_line(text),
            "",
            f"The broker stopped watching for an automatic hand-back. Answer in {target}'s "
            f"thread: {_where(ctx)}",
            f"Handoff: {ctx.base_url}/api/handoffs/{stored.id}",
            "",
            marker(stored.id, f"watch:{ref}"),
        ]
    )


def seen_before_section(items: tuple[dict[str, Any], ...], base_url: str) -> list[str]:
    """Lines of the "Seen before" section: earlier investigations of the same resources (earlier
    callers' text, so every value is rendered as data on its own line)."""
    lines = ["## Seen before", "Earlier investigations of these resources (newest first):"]
    for item in items:
        outcome = OUTCOME_LABELS.get(str(item.get("outcome"))) or inline(str(item.get("outcome") or ""))
        when = inline(str(item.get("handedBackAt") or "")[:16].replace("T", " "))
        title = inline(str(item.get("title") or "")) or "(untitled)"
        handoff_id = single_line(str(item.get("handoffId") or ""))
        lines.append(
            f"- {when} UTC — **{title}** — {outcome} "
            f"({inline(str(item.get('source') or ''))} → {inline(str(item.get('target') or ''))}, "
            f"handoff {code(handoff_id)}: "
            f"{base_url}/api/handoffs/{percent_encode(handoff_id, safe='')})"
        )
        if item.get("rootCause"):
            cause = str(item["rootCause"])
            lines.append(f"  - Root cause: {inline(cause[:400])}{' …' if len(cause) > 400 else ''}")
        for action in list(item.get("recommendedActions") or [])[:3]:
            lines.append(f"  - Action: {inline(str(action)[:200])}")
        lines += human_note_lines(item)
    lines.append("")
    return lines
