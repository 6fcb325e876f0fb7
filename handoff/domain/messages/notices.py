"""What the broker posts into the source agent's (A's) thread: the cross-link to B's thread, B's
hand-back, an A2A task that ended without a result, and B waiting for an approval or an answer; and the
hand-back's text for an A2A caller."""

from __future__ import annotations

from handoff.domain.markdown import inline, quote, quote_list, single_line
from handoff.domain.messages.blocks import evidence_lines, quote_line
from handoff.domain.messages.context import OUTCOME_LABELS, MessageContext, target_thread_link
from handoff.domain.messages.markers import header, marker
from handoff.domain.records import HandoffRecord, StoredHandback

REMOTE_STATUS_TEXT = {
    "inputRequired": "needs input before it can go on",
    "failed": "could not complete the investigation",
    "rejected": "rejected the handoff",
    "canceled": "canceled the investigation",
}


def crosslink_message(record: HandoffRecord, ctx: MessageContext) -> str:
    """Posted into A's thread once B's thread exists."""
    stored = record.stored
    target = inline(ctx.target_label)
    return "\n".join(
        [
            header(stored.id, f"Handed off to {target}: {inline(stored.request.context.title)}"),
            "",
            f"{target} is now investigating in its thread: {target_thread_link(ctx)}",
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
        lines += ["## Evidence", *evidence_lines(evidence, f"{ctx.base_url}/api/handoffs/{stored.id}")]
    if ctx.target_thread_url:
        lines.append(f"{target}'s thread: {target_thread_link(ctx)}")
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
            f"thread: {target_thread_link(ctx)}",
            f"Handoff: {ctx.base_url}/api/handoffs/{stored.id}",
            "",
            marker(stored.id, f"watch:{ref}"),
        ]
    )
