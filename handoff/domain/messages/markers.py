"""How the broker names its messages and threads, and how it recognises them again.

Every message starts with ``[Handoff <id>]`` (:func:`header`) and ends with a marker line
(:func:`marker`). Caller text never starts or ends a message, so :func:`is_marked` and
:func:`is_handoff_thread` trust only a message's first and last line.
"""

from __future__ import annotations

from urllib.parse import quote as percent_encode

PORTAL_BASE = "https://sre.azure.com"
MARKER_PREFIX = "handoff-ref:"
# The base every thread link is built from: the SRE Agent portal, or HANDOFF_PORTAL_URL (the simulated
# agents' pages under `make run`), set once at start-up by the composition root.
_portal = [PORTAL_BASE]


def set_portal_base(url: str) -> None:
    """Build thread links from ``url`` from now on (called once, at start-up)."""
    _portal[0] = url.rstrip("/")


def thread_url(resource_id: str | None, thread_id: str | None) -> str | None:
    """Portal deep link to an agent's thread (the thread id percent-encoded as one path segment)."""
    if not resource_id or not thread_id:
        return None
    return f"{_portal[0]}/agents{resource_id}/views/thread/{percent_encode(thread_id, safe='')}"


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
