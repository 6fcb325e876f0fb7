"""Messages the broker writes into agents' threads: readable by a person, structured for a model.

Every message starts with ``[Handoff <id>]`` and ends with a marker line, so a redelivery can find
what an earlier attempt already posted.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

from handoff.records import HandoffRecord, StoredHandback

PORTAL_BASE = "https://sre.azure.com"
OUTCOME_LABELS = {
    "rootCauseFound": "root cause found",
    "mitigated": "mitigated",
    "needsAction": "needs action",
    "unableToDetermine": "unable to determine",
    "declined": "declined",
    "reported": "reported",
}
_STRING_CAPS = (4096, 1024, 256)


def thread_url(resource_id: str | None, thread_id: str | None) -> str | None:
    """Portal deep link to an agent's thread."""
    if not resource_id or not thread_id:
        return None
    return f"{PORTAL_BASE}/agents{resource_id}/views/thread/{thread_id}"


def marker(handoff_id: str, step: str) -> str:
    """The line that identifies one message of one handoff (``step``: start, crosslink, handback:N)."""
    return f"handoff-ref: {handoff_id}/{step}"


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


def fence_for(text: str, minimum: int = 3) -> str:
    """A backtick fence longer than any backtick run inside ``text``, so the block cannot break."""
    longest = max((len(run) for run in re.findall(r"`+", text)), default=0)
    return "`" * max(minimum, longest + 1)


def _cell(value: Any) -> str:
    text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
    return text.replace("\\", "\\\\").replace("|", "\\|").replace("\r", " ").replace("\n", " ")


def _kql_table(columns: list[str], rows: list[list[Any]]) -> list[str]:
    if not columns:
        return []
    lines = ["| " + " | ".join(_cell(c) for c in columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(_cell(v) for v in row) + " |" for row in rows]
    return lines


def _bullets(items: list[str]) -> list[str]:
    return [f"- {item}" for item in items]


def _render_evidence(evidence: list[dict[str, Any]], full_url: str) -> list[str]:
    lines: list[str] = []
    for item in evidence:
        kind = item["kind"]
        title = item.get("title")
        if kind == "kql":
            lines.append(f"### {title} (KQL)")
            query_fence = fence_for(item["query"])
            lines += [f"{query_fence}kusto", item["query"], query_fence]
            lines += _kql_table(item.get("columns", []), item.get("rows", []))
            if item.get("truncatedRows"):
                lines.append(
                    f"_{item['truncatedRows']} more rows cut to fit this message; all rows: {full_url}_"
                )
        elif kind == "link":
            lines.append(f"- [{title}]({item['url']})")
        elif kind == "note":
            lines.append(f"- {'**' + title + ':** ' if title else ''}{item['content']}")
        else:
            body = json.dumps(item.get("data", {}), ensure_ascii=False, indent=2)
            data_fence = fence_for(body)
            lines += [f"### {title}", f"{data_fence}json", body, data_fence]
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
    source_link = f" — [thread]({ctx.source_thread_url})" if ctx.source_thread_url else ""
    lines = [
        f"[Handoff {stored.id}] {context['title']}",
        "",
        f"**Severity:** {context['severity']} · **Intent:** {request.intent} · "
        f"**From:** {ctx.source_label}{source_link}",
    ]
    incident = context.get("incident")
    if incident:
        where = f" ({incident['platform']})" if incident.get("platform") else ""
        link = f" {incident['url']}" if incident.get("url") else ""
        lines.append(f"**Incident:** {incident['id']}{where}{link}")
    if request.correlation_id:
        lines.append(f"**Correlation id:** {request.correlation_id}")
    if stored.depth:
        lines.append(f"**Chain:** step {stored.depth + 1}, parent handoff {request.parent_handoff_id}")
    lines += ["", "## Summary", context["summary"], ""]
    if context.get("resources"):
        lines += ["## Resources", *_bullets(context["resources"]), ""]
    if ctx.seen_before:
        lines += seen_before_section(ctx.seen_before, ctx.base_url)
    if context.get("evidence"):
        lines += ["## Evidence", *_render_evidence(context["evidence"], handoff_url)]
    if context.get("hypotheses"):
        lines += ["## Hypotheses", *_bullets(context["hypotheses"]), ""]
    if context.get("actionsTaken"):
        lines += ["## Actions already taken", *_bullets(context["actionsTaken"]), ""]
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
        f"When you have findings, hand them back to {ctx.source_label}: "
        f"`POST {handoff_url}/handback` with JSON {json.dumps(example)} "
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
    body = json.dumps(payload, ensure_ascii=False, indent=1)
    fence = fence_for(body)
    lines += [f"{fence}json", body, fence, "", marker(stored.id, "start")]
    return "\n".join(lines)


def trigger_payload(record: HandoffRecord, ctx: MessageContext) -> dict[str, Any]:
    """Body for an HTTP-trigger delivery: flat fields for ``{payload.x}`` placeholders plus the context."""
    stored = record.stored
    context = stored.request.context
    handoff_url = f"{ctx.base_url}/api/handoffs/{stored.id}"
    return {
        "handoffId": stored.id,
        "title": context.title,
        "summary": context.summary,
        "severity": context.severity,
        "intent": stored.request.intent,
        "sourceAgent": stored.source_agent,
        "sourceThreadId": stored.request.source.thread_id,
        "sourceThreadUrl": ctx.source_thread_url,
        "handoffUrl": handoff_url,
        "handbackUrl": f"{handoff_url}/handback",
        "message": start_message(record, ctx),
        "context": context.to_wire(),
    }


def crosslink_message(record: HandoffRecord, ctx: MessageContext) -> str:
    """Posted into A's thread once B's thread exists."""
    stored = record.stored
    where = ctx.target_thread_url or "(thread link not available)"
    return "\n".join(
        [
            f"[Handoff {stored.id}] Handed off to {ctx.target_label}: {stored.request.context.title}",
            "",
            f"{ctx.target_label} is now investigating in its thread: {where}",
            f"Status and audit: {ctx.base_url}/api/handoffs/{stored.id}",
            "",
            marker(stored.id, "crosslink"),
        ]
    )


def handback_message(record: HandoffRecord, handback: StoredHandback, ctx: MessageContext) -> str:
    """Posted into A's thread when B hands back its findings."""
    stored = record.stored
    request = handback.request
    lines = [
        f"[Handoff {stored.id}] Hand-back from {ctx.target_label}: "
        f"{OUTCOME_LABELS[request.outcome]} — {stored.request.context.title}",
        "",
        f"**Outcome:** {request.outcome}",
        "",
    ]
    if handback.automatic:
        lines += [
            f"_{ctx.target_label} did not hand back itself; this is its final reply, handed back "
            "automatically by the broker._",
            "",
        ]
    lines += ["## Summary", request.summary, ""]
    if request.root_cause:
        lines += ["## Root cause", request.root_cause, ""]
    if request.recommended_actions:
        lines += ["## Recommended actions"]
        lines += [f"{n}. {action}" for n, action in enumerate(request.recommended_actions, 1)]
        lines.append("")
    if request.evidence:
        evidence = [item.to_wire() for item in request.evidence]
        lines += ["## Evidence", *_render_evidence(evidence, f"{ctx.base_url}/api/handoffs/{stored.id}")]
    if ctx.target_thread_url:
        lines.append(f"{ctx.target_label}'s thread: {ctx.target_thread_url}")
    lines += [
        f"Handoff: {ctx.base_url}/api/handoffs/{stored.id}",
        "",
        marker(stored.id, f"handback:{handback.seq}"),
    ]
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
    what = REMOTE_STATUS_TEXT.get(status, status)
    lines = [
        f"[Handoff {stored.id}] {ctx.target_label} {what}: {stored.request.context.title}",
        "",
        f"**Status:** {status}",
    ]
    if detail:
        lines += ["", detail]
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
    where = ctx.target_thread_url or "(thread link not available)"
    return "\n".join(
        [
            f"[Handoff {stored.id}] {ctx.target_label} is waiting for {waits_for}: "
            f"{stored.request.context.title}",
            "",
            f"> {text}",
            "",
            f"The broker stopped watching for an automatic hand-back. Answer in {ctx.target_label}'s "
            f"thread: {where}",
            f"Handoff: {ctx.base_url}/api/handoffs/{stored.id}",
            "",
            marker(stored.id, f"watch:{ref}"),
        ]
    )


def seen_before_section(items: tuple[dict[str, Any], ...], base_url: str) -> list[str]:
    """Lines of the "Seen before" section: earlier investigations of the same resources."""
    lines = ["## Seen before", "Earlier investigations of these resources (newest first):"]
    for item in items:
        outcome = OUTCOME_LABELS.get(str(item.get("outcome")), str(item.get("outcome")))
        when = str(item.get("handedBackAt", ""))[:16].replace("T", " ")
        lines.append(
            f"- {when} UTC — **{item.get('title', '')}** — {outcome} "
            f"({item.get('source')} → {item.get('target')}, handoff {item.get('handoffId')}: "
            f"{base_url}/api/handoffs/{item.get('handoffId')})"
        )
        if item.get("rootCause"):
            cause = str(item["rootCause"])
            lines.append(f"  - Root cause: {cause[:400]}{' …' if len(cause) > 400 else ''}")
        for action in list(item.get("recommendedActions") or [])[:3]:
            lines.append(f"  - Action: {str(action)[:200]}")
    lines.append("")
    return lines
