"""What rendering a message needs besides the handoff, and the words several messages share."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from handoff.domain.markdown import url_or_text

OUTCOME_LABELS = {
    "rootCauseFound": "root cause found",
    "mitigated": "mitigated",
    "needsAction": "needs action",
    "unableToDetermine": "unable to determine",
    "declined": "declined",
    "reported": "reported",
}


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


def target_thread_link(ctx: MessageContext) -> str:
    """Where B's thread is, as a link when it is https (else as text), or that it is not known."""
    return url_or_text(ctx.target_thread_url) if ctx.target_thread_url else "(thread link not available)"
