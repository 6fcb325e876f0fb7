"""What the command line prints: Rich tables, panels and trees for people, the API's JSON for scripts.

Everything the broker returns may hold caller text (titles, summaries, reasons, thread ids). It is printed
as Rich :class:`~rich.text.Text`, never as markup, so ``[link=...]`` in a summary stays text; and control
characters (terminal escape sequences, bidirectional overrides) are shown as ``?`` so a summary cannot
move the cursor, change the title of the terminal or hide text.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

import click
from rich.console import Console, Group, RenderableType
from rich.panel import Panel
from rich.table import Table
from rich.text import Text
from rich.tree import Tree

# C0 and C1 control characters (but tab and newline) and the bidirectional overrides and isolates.
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f\u200e\u200f\u202a-\u202e\u2066-\u2069]")
STATUS_STYLES = {
    "accepted": "yellow",
    "delivered": "cyan",
    "handedBack": "green",
    "failed": "bold red",
    "rejected": "red",
    "canceled": "red",
    "inputRequired": "magenta",
}
FAILED_STATUSES = frozenset({"failed", "rejected", "canceled"})


def clean(value: object) -> str:
    """``value`` as printable text: control and bidi characters become ``?``."""
    return _CONTROL.sub("?", "" if value is None else str(value))


def text(value: object, style: str = "") -> Text:
    """Caller text as a Rich text (never markup)."""
    return Text(clean(value), style=style)


def status_text(status: object) -> Text:
    """A handoff status, coloured."""
    return text(status, STATUS_STYLES.get(str(status), ""))


def when(value: object) -> str:
    """An API timestamp as ``YYYY-MM-DD HH:MM:SS`` UTC (the value as it is when it is no timestamp)."""
    if not isinstance(value, str):
        return "" if value is None else clean(value)
    try:
        at = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return clean(value)
    at = at.astimezone(UTC) if at.tzinfo else at
    return at.strftime("%Y-%m-%d %H:%M:%S")


def short(handoff_id: object) -> str:
    """The first eight characters of an id."""
    return clean(handoff_id)[:8]


def json_text(data: Any) -> str:
    """Indented JSON; characters a terminal would act on are written as ``\\u`` escapes (JSON escapes
    C0 controls itself), so the output parses the same and prints harmlessly."""
    dumped = json.dumps(data, indent=2, ensure_ascii=False)
    return _CONTROL.sub(lambda match: f"\\u{ord(match.group()):04x}", dumped)


class Output:
    """Where a command prints: JSON to stdout with ``--json``, Rich renderings otherwise."""

    def __init__(self, as_json: bool, console: Console | None = None) -> None:
        self.as_json = as_json
        self.console = console or Console(highlight=False, soft_wrap=False)
        self.errors = Console(stderr=True, highlight=False)

    def json(self, data: Any) -> None:
        """The API's JSON, as it came."""
        click.echo(json_text(data))

    def show(self, renderable: RenderableType) -> None:
        """A Rich rendering."""
        self.console.print(renderable)

    def line(self, message: str, style: str = "") -> None:
        """One line, never broken by Rich (a long one is left to the terminal to wrap)."""
        self.console.print(Text(message, style=style), soft_wrap=True)

    def error(self, lines: Iterable[str]) -> None:
        """An error, on stderr."""
        for line in lines:
            self.errors.print(text(line, "red"))


# ---------------------------------------------------------------- renderings


def handoff_panel(view: Mapping[str, Any]) -> Panel:
    """One handoff: status, both threads, timing, attempts, error, chain and hand-backs."""
    grid = Table.grid(padding=(0, 2))
    grid.add_column(style="bold")
    grid.add_column(overflow="fold")  # thread URLs stay whole (folded), so they can be opened
    source, target = view.get("source") or {}, view.get("target") or {}
    context = view.get("context") or {}
    rows: list[tuple[str, object]] = [
        ("Status", status_text(view.get("status"))),
        ("Title", text(context.get("title"))),
        ("Intent", text(f"{clean(view.get('intent'))}, {clean(context.get('severity'))}")),
        ("Source", text(_endpoint(source))),
        ("Target", text(_endpoint(target))),
        ("Created", when(view.get("createdAt"))),
        ("Updated", when(view.get("updatedAt"))),
        ("Delivered", when(view.get("deliveredAt"))),
        ("Handed back", when(view.get("handedBackAt"))),
        ("Attempts", str(view.get("attempts", 0))),
        ("Last error", text(view.get("lastError"), "red")),
        ("Warnings", text(_warnings(view), "yellow")),
        ("Chain", text(_chain(view))),
    ]
    for label, value in rows:
        if value not in ("", None) and not (isinstance(value, Text) and not value.plain.strip(" ,")):
            grid.add_row(label, value if isinstance(value, Text) else text(value))
    parts: list[RenderableType] = [grid]
    if view.get("handbacks"):
        parts.append(handbacks_table(view["handbacks"]))
    return Panel(Group(*parts), title=text(f"Handoff {clean(view.get('id'))}"), expand=False)


def _warnings(view: Mapping[str, Any]) -> str:
    return "\n".join(
        f"{clean(w.get('code'))}: {clean(w.get('detail'))}"
        for w in view.get("warnings") or []
        if isinstance(w, Mapping)
    )


def _endpoint(endpoint: Mapping[str, Any]) -> str:
    parts = [clean(endpoint.get("agent"))]
    if endpoint.get("threadId"):
        parts.append(f"thread {clean(endpoint['threadId'])}")
    if endpoint.get("taskId"):
        parts.append(f"task {clean(endpoint['taskId'])}")
    line = "  ".join(parts)
    return f"{line}\n{clean(endpoint['threadUrl'])}" if endpoint.get("threadUrl") else line


def _chain(view: Mapping[str, Any]) -> str:
    chain = view.get("chain") or {}
    parts = []
    if view.get("rootHandoffId") and view.get("rootHandoffId") != view.get("id"):
        parts.append(f"root {short(view['rootHandoffId'])}")
    if chain.get("parent"):
        parts.append(f"parent {short(chain['parent'].get('id'))}")
    children = [short(child.get("id")) for child in chain.get("children") or []]
    if children:
        parts.append("children " + ", ".join(children))
    return "; ".join(parts)


def handbacks_table(handbacks: Sequence[Mapping[str, Any]]) -> Table:
    """The hand-backs of a handoff."""
    table = Table(title="Hand-backs", title_justify="left", expand=False)
    for column in ("#", "Received", "Outcome", "Delivery", "Summary"):
        table.add_column(column)
    for hb in handbacks:
        table.add_row(
            str(hb.get("seq")),
            when(hb.get("receivedAt")),
            text(hb.get("outcome")),
            text(hb.get("delivery")),
            text(clean(hb.get("summary"))[:200]),
        )
    return table


def audit_table(handoff_id: str, events: Sequence[Mapping[str, Any]]) -> Table:
    """The audit of a handoff as a timeline: one row per event."""
    table = Table(title=text(f"Audit of {handoff_id}"), title_justify="left")
    for column in ("Seq", "Time (UTC)", "Event", "Actor", "Details"):
        table.add_column(column, overflow="fold")
    for event in events:
        kind = str(event.get("type"))
        style = "red" if "Failed" in kind or kind in ("remoteRejected", "remoteCanceled") else ""
        table.add_row(
            str(event.get("seq")),
            when(event.get("at")),
            text(kind, style),
            text(event.get("actor")),
            text(details_text(event.get("details") or {})),
        )
    return table


def details_text(details: Mapping[str, Any]) -> str:
    """Event details as ``key=value`` pairs, values cut to a line."""
    pairs = []
    for key, value in details.items():
        shown = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
        shown = " ".join(clean(shown).split())
        pairs.append(f"{clean(key)}={shown[:400]}")
    return " ".join(pairs)


def handoffs_table(items: Sequence[Mapping[str, Any]], title: str = "Handoffs") -> Table:
    """A page of handoffs, newest first."""
    table = Table(title=title, title_justify="left")
    for column in ("Id", "Status", "Source → target", "Title", "Created (UTC)", "Updated (UTC)"):
        table.add_column(column, overflow="fold")
    for item in items:
        source, target = item.get("source"), item.get("target")
        source_name = source.get("agent") if isinstance(source, dict) else source
        target_name = target.get("agent") if isinstance(target, dict) else target
        title_text = item.get("title") or (item.get("context") or {}).get("title")
        table.add_row(
            text(item.get("id")),
            status_text(item.get("status")),
            text(f"{clean(source_name)} → {clean(target_name)}"),
            text(clean(title_text)[:120]),
            when(item.get("createdAt")),
            when(item.get("updatedAt")),
        )
    return table


def history_table(items: Sequence[Mapping[str, Any]]) -> Table:
    """A page of earlier investigations."""
    table = Table(title="Earlier investigations", title_justify="left")
    for column in ("Handed back (UTC)", "Outcome", "Source → target", "Title", "Root cause", "Handoff"):
        table.add_column(column, overflow="fold")
    for item in items:
        table.add_row(
            when(item.get("handedBackAt")),
            text(item.get("outcome")),
            text(f"{clean(item.get('source'))} → {clean(item.get('target'))}"),
            text(clean(item.get("title"))[:120]),
            text(clean(item.get("rootCause"))[:160]),
            text(item.get("handoffId")),
        )
    return table


def agents_table(agents: Sequence[Mapping[str, Any]]) -> Table:
    """The registered agents."""
    table = Table(title="Registered agents", title_justify="left")
    for column in ("Name", "Display name", "Delivery", "Description"):
        table.add_column(column, overflow="fold")
    for agent in agents:
        table.add_row(
            text(agent.get("name"), "bold"),
            text(agent.get("displayName")),
            text(agent.get("delivery")),
            text(agent.get("description")),
        )
    return table


def links_tree(answer: Mapping[str, Any]) -> Tree:
    """The threads linked to one, as a tree from it: each link hangs under the thread it was reached from."""
    start = (clean(answer.get("agent")), clean(answer.get("threadId")))
    tree = Tree(text(f"{start[0]} / {start[1]}", "bold"))
    children: dict[tuple[str, str], list[Mapping[str, Any]]] = {}
    for link in answer.get("links") or []:
        thread = link.get("thread") or {}
        children.setdefault((clean(thread.get("agent")), clean(thread.get("threadId"))), []).append(link)
    nodes = {start: tree}
    frontier = [start]
    while frontier:
        node = frontier.pop(0)
        for link in children.pop(node, []):
            peer = link.get("peer") or {}
            key = (clean(peer.get("agent")), clean(peer.get("threadId")))
            label = text(
                f"{clean(link.get('relation'))} {key[0]} / {key[1]}  (handoff {short(link.get('handoffId'))})"
            )
            if peer.get("threadUrl"):
                label.append(f"\n{clean(peer['threadUrl'])}", style="dim")
            branch = nodes[node].add(label)
            if key not in nodes:
                nodes[key] = branch
                frontier.append(key)
    return tree
