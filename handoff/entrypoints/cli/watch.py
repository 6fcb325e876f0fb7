"""``status --watch``: follow a handoff until it is delivered (or handed back), or ends otherwise.

On a terminal a Rich live view redraws the handoff and its newest audit events; anywhere else (a pipe, a
CI log) each new audit event is printed as one line, then the handoff once it stops.
"""

from __future__ import annotations

import time
from typing import Any

from rich.console import Group
from rich.live import Live

from handoff.entrypoints.cli.output import audit_table, clean, details_text, handoff_panel, when
from handoff.entrypoints.cli.session import CommandFailed, Session

# Statuses after which nothing more happens without someone acting.
ENDS = frozenset({"failed", "rejected", "canceled", "inputRequired"})
UNTIL = {"delivered": frozenset({"delivered", "handedBack"}), "handedBack": frozenset({"handedBack"})}
RECENT = 12  # audit events the live view shows


class _Follower:
    """The handoff as last read, and its audit events so far."""

    def __init__(self, session: Session, handoff_id: str) -> None:
        self.session = session
        self.handoff_id = handoff_id
        self.view: dict[str, Any] = {}
        self.events: list[dict[str, Any]] = []

    def poll(self) -> list[dict[str, Any]]:
        """Read the handoff and the audit events after the last one seen; returns the new events."""
        client = self.session.client
        self.view = client.handoff(self.handoff_id)
        new: list[dict[str, Any]] = []
        while True:
            seen = self.events[-1]["seq"] if self.events else 0
            page = client.audit_after(self.handoff_id, int(seen))
            events = page.get("events") or []
            new += events
            self.events += events
            if not page.get("continuationToken") or not events:
                return new

    def done(self, until: str) -> bool:
        status = self.view.get("status")
        return status in UNTIL[until] or status in ENDS

    def render(self) -> Group:
        return Group(handoff_panel(self.view), audit_table(self.handoff_id, self.events[-RECENT:]))


def watch(session: Session, handoff_id: str, until: str, interval: float, timeout: float) -> dict[str, Any]:
    """Poll every ``interval`` seconds until the handoff reaches ``until`` (or fails, is rejected,
    canceled, or needs input); returns its last view. :class:`CommandFailed` after ``timeout`` seconds."""
    follower = _Follower(session, handoff_id)
    out = session.out
    deadline = time.monotonic() + timeout
    live_view = out.console.is_terminal and not out.as_json
    live = Live(console=out.console, refresh_per_second=4, transient=False) if live_view else None
    if live is not None:
        live.start()
    try:
        while True:
            new = follower.poll()
            if live is not None:
                live.update(follower.render())
            elif not out.as_json:
                for event in new:
                    out.line(
                        f"{when(event.get('at'))}  {clean(event.get('type'))}  "
                        f"{details_text(event.get('details') or {})}"
                    )
            if follower.done(until):
                return follower.view
            if time.monotonic() >= deadline:
                status = clean(follower.view.get("status"))
                raise CommandFailed(f"still {status} after {timeout:g} s (waiting for {until})")
            time.sleep(interval)
    finally:
        if live is not None:
            live.stop()
