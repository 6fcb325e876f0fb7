"""What the broker delivers to the target agent (B): the start message of B's thread, and the same
handoff as an HTTP-trigger payload or an A2A data part.

The start message is readable by a person (headed sections, caller text as data) and exact for a model
(a fenced ``json`` payload); it is cut to the size budget when it is too large (:mod:`.budget`).
"""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import quote as percent_encode

from handoff.domain.markdown import code, inline, link, quote, quote_list, single_line
from handoff.domain.messages.blocks import evidence_lines, json_block
from handoff.domain.messages.budget import STRING_CAPS, cut_rows, cut_strings
from handoff.domain.messages.context import OUTCOME_LABELS, MessageContext
from handoff.domain.messages.markers import header, marker
from handoff.domain.models import CONTRACT_SCHEMA_ID, CONTRACT_VERSION
from handoff.domain.records import HandoffRecord
from handoff.domain.seen_before import human_note_lines


def start_message(record: HandoffRecord, ctx: MessageContext) -> str:
    """The first message of B's thread: the whole handoff, cut to the size budget if needed."""
    context = record.stored.request.context.to_wire()
    text = _render_start(record, ctx, context, cut=False)
    caps = iter(STRING_CAPS)
    while len(text.encode()) > ctx.budget_bytes:
        if not cut_rows(context):
            cap = next(caps, None)
            if cap is None:
                break
            cut_strings(context, cap)
        text = _render_start(record, ctx, context, cut=True)
    return text


def _render_start(record: HandoffRecord, ctx: MessageContext, context: dict[str, Any], *, cut: bool) -> str:
    stored = record.stored
    handoff_url = f"{ctx.base_url}/api/handoffs/{stored.id}"
    lines = [*_start_head(record, ctx, context), *_start_sections(ctx, context, handoff_url)]
    if cut:
        lines += [f"_Some content was cut to fit this message. Full context: GET {handoff_url}_", ""]
    lines += _how_to_hand_back(record, ctx, handoff_url)
    payload = _start_payload(record, ctx, context, handoff_url)
    lines += ["## Payload", *json_block(payload), "", marker(stored.id, "start")]
    return "\n".join(lines)


def _start_head(record: HandoffRecord, ctx: MessageContext, context: dict[str, Any]) -> list[str]:
    """The header and the one-line facts under it: severity, intent, source, incident, chain."""
    stored = record.stored
    request = stored.request
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
    return lines


def _start_sections(ctx: MessageContext, context: dict[str, Any], handoff_url: str) -> list[str]:
    """The caller's context as sections: summary, resources, seen before, evidence, hypotheses, actions."""
    lines = ["", "## Summary", *quote(context["summary"]), ""]
    if context.get("resources"):
        lines += ["## Resources", *(f"- {code(resource)}" for resource in context["resources"]), ""]
    if ctx.seen_before:
        lines += seen_before_section(ctx.seen_before, ctx.base_url)
    if context.get("evidence"):
        lines += ["## Evidence", *evidence_lines(context["evidence"], handoff_url)]
    if context.get("hypotheses"):
        lines += ["## Hypotheses", *quote_list(context["hypotheses"]), ""]
    if context.get("actionsTaken"):
        lines += ["## Actions already taken", *quote_list(context["actionsTaken"]), ""]
    return lines


def _how_to_hand_back(record: HandoffRecord, ctx: MessageContext, handoff_url: str) -> list[str]:
    handoff_id = record.stored.id
    example = {
        "agent": ctx.target_agent_name,
        "threadId": "<this thread id>",
        "outcome": "rootCauseFound | mitigated | needsAction | unableToDetermine | declined",
        "summary": "...",
        "rootCause": "...",
        "recommendedActions": ["..."],
    }
    return [
        "## How to hand back",
        f"When you have findings, hand them back to {inline(ctx.source_label)}: "
        f"`POST {handoff_url}/handback` with JSON {code(json.dumps(example))} "
        f"(or the MCP tool `handoff_hand_back` with handoffId `{handoff_id}`). "
        f"Handoff id: {handoff_id}. Full context: GET {handoff_url}",
        "",
    ]


def _start_payload(
    record: HandoffRecord, ctx: MessageContext, context: dict[str, Any], handoff_url: str
) -> dict[str, Any]:
    """The start message's json block: the handoff (``context`` as cut to the budget) and its links."""
    stored = record.stored
    request = stored.request
    return {
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


def a2a_contract_request(record: HandoffRecord) -> dict[str, Any]:
    """The handoff as the contract's ``handoff-request`` document, for the ``data`` part an A2A partner
    reads when it speaks the contract's extension (the broker's own links stay in :func:`a2a_payload`)."""
    stored = record.stored
    wire = stored.request.to_wire()
    wire["source"] = {**wire.get("source", {}), "agent": stored.source_agent}
    wire["target"] = {**wire.get("target", {}), "agent": stored.target_agent}
    return {**wire, "schemaId": CONTRACT_SCHEMA_ID, "schemaVersion": CONTRACT_VERSION}


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
