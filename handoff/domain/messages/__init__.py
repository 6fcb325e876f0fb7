"""Messages the broker writes into agents' threads: readable by a person, structured for a model.

Every message starts with ``[Handoff <id>]`` and ends with a marker line, so a redelivery can find
what an earlier attempt already posted. Caller text is rendered as data (:mod:`handoff.domain.markdown`):
single-line values escaped on a line the broker starts, multi-line values quoted, links https only.
So neither the header, a heading nor a marker line can come from a caller, and the duplicate
detection (:func:`is_marked`, :func:`is_handoff_thread`) trusts only a message's first and last line.

The modules: :mod:`.markers` (header, marker, thread links, recognising the broker's messages),
:mod:`.context` (what rendering needs), :mod:`.blocks` (evidence, the json block), :mod:`.budget`
(cutting to the size budget), :mod:`.start` (what B receives) and :mod:`.notices` (what A's thread gets).
"""

from handoff.domain.markdown import fence_for
from handoff.domain.messages.blocks import json_text, quote_line
from handoff.domain.messages.context import OUTCOME_LABELS, MessageContext
from handoff.domain.messages.markers import (
    MARKER_PREFIX,
    PORTAL_BASE,
    header,
    is_handoff_thread,
    is_marked,
    marker,
    thread_url,
)
from handoff.domain.messages.notices import (
    REMOTE_STATUS_TEXT,
    crosslink_message,
    handback_message,
    handback_text,
    remote_status_message,
    watch_notice_message,
)
from handoff.domain.messages.start import (
    a2a_contract_request,
    a2a_payload,
    seen_before_section,
    start_message,
    trigger_payload,
)

__all__ = [
    "MARKER_PREFIX",
    "OUTCOME_LABELS",
    "PORTAL_BASE",
    "REMOTE_STATUS_TEXT",
    "MessageContext",
    "a2a_contract_request",
    "a2a_payload",
    "crosslink_message",
    "fence_for",
    "handback_message",
    "handback_text",
    "header",
    "is_handoff_thread",
    "is_marked",
    "json_text",
    "marker",
    "quote_line",
    "remote_status_message",
    "seen_before_section",
    "start_message",
    "thread_url",
    "trigger_payload",
    "watch_notice_message",
]
