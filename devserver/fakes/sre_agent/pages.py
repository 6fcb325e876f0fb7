"""HTML pages of the simulated SRE Agent, for people watching a local run in a browser.

``GET /`` lists the agent's threads, newest first; ``GET /threads/{id}`` shows one thread's messages,
oldest first (newest last, as in a chat), refreshing every few seconds so simulated replies appear.
Everything shown comes from callers (handoff context, hand-backs, people's notes), so every value is
HTML-escaped and the pages run no script (a Content-Security-Policy forbids it as well).
"""

from __future__ import annotations

import html
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from starlette.responses import HTMLResponse, Response

from devserver.fakes._service import Call, HttpError
from devserver.fakes.sre_agent.data_plane import thread_or_404

if TYPE_CHECKING:
    from devserver.fakes.sre_agent.agent import FakeSreAgent

# No script, no frames, no forms, nothing from elsewhere: only the page's own inline style.
PAGE_HEADERS = {
    "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; base-uri 'none'; "
    "form-action 'none'; frame-ancestors 'none'",
    "X-Content-Type-Options": "nosniff",
    "Cache-Control": "no-store",
}
REFRESH_SECONDS = 3
_STYLE = (
    "body{font-family:system-ui,sans-serif;max-width:60rem;margin:2rem auto;padding:0 1rem;color:#222}"
    "pre{white-space:pre-wrap;word-break:break-word;font:inherit;margin:.5rem 0 0}"
    ".message{border:1px solid #ddd;border-radius:6px;padding:.75rem 1rem;margin:.75rem 0}"
    ".SREAgent{background:#f4f8ff}.meta{color:#666;font-size:.85rem}"
    "table{border-collapse:collapse}td,th{padding:.3rem .8rem;border-bottom:1px solid #eee;text-align:left}"
)


def thread_path(thread_id: str) -> str:
    """Path of a thread's page (the id percent-encoded as one path segment)."""
    return f"/threads/{quote(thread_id, safe='')}"


def _e(value: object) -> str:
    """``value`` as HTML text (quotes escaped too, so it is safe in attributes)."""
    return html.escape("" if value is None else str(value), quote=True)


def _page(title: str, body: str, *, refresh: bool = False) -> str:
    meta = f'<meta http-equiv="refresh" content="{REFRESH_SECONDS}">' if refresh else ""
    return (
        f'<!doctype html><html lang="en"><head><meta charset="utf-8">{meta}<title>{_e(title)}</title>'
        f"<style>{_STYLE}</style></head><body>{body}</body></html>"
    )


def render_index(agent_name: str, resource_id: str, threads: Iterable[Mapping[str, Any]]) -> str:
    """The list of threads (as :meth:`FakeSreAgent.threads` returns them), newest first."""
    rows = [
        f'<tr><td><a href="{_e(thread_path(thread["id"]))}">{_e(thread["title"])}</a></td>'
        f"<td>{len(thread.get('messages', []))}</td>"
        f'<td class="meta">{_e(thread["createdTimestamp"])}</td></tr>'
        for thread in reversed(list(threads))
    ]
    table = (
        "<table><tr><th>Thread</th><th>Messages</th><th>Created (UTC)</th></tr>" + "".join(rows) + "</table>"
        if rows
        else "<p>No threads yet.</p>"
    )
    body = (
        f"<h1>Simulated SRE Agent {_e(agent_name)}</h1><p class=meta>{_e(resource_id)}</p>"
        f"<h2>Threads</h2>{table}"
    )
    return _page(f"{agent_name}: threads", body, refresh=True)


def _message_html(message: Mapping[str, Any]) -> str:
    author = message.get("author") or {}
    who = author.get("displayName") or author.get("role") or "unknown"
    kind = message.get("messageType", "Text")
    state = "" if message.get("isComplete", True) else " · still writing"
    extra = ""
    if approval := message.get("approval"):
        extra = f"<p><b>Approval</b> ({_e(approval.get('status'))}): {_e(approval.get('title'))}</p>"
    if question := message.get("userQuestion"):
        extra = f"<p><b>Question</b> ({_e(question.get('status'))})</p>"
    role = _e(author.get("role", ""))
    return (
        f'<div class="message {role}"><div class=meta>{_e(who)} ({role}) · {_e(message.get("timeStamp"))}'
        f" · {_e(kind)}{state}</div>{extra}<pre>{_e(message.get('text', ''))}</pre></div>"
    )


def render_thread(agent_name: str, thread: Mapping[str, Any]) -> str:
    """One thread (as :meth:`FakeSreAgent.thread` returns it) with its messages, newest last."""
    messages = "".join(_message_html(message) for message in thread.get("messages", []))
    body = (
        f'<p><a href="/">{_e(agent_name)}: all threads</a></p><h1>{_e(thread["title"])}</h1>'
        f"<p class=meta>Thread {_e(thread['id'])} · created {_e(thread['createdTimestamp'])} UTC</p>"
        f"{messages}"
    )
    return _page(f"{agent_name}: {thread['title']}", body, refresh=True)


class PageRoutes:
    """``GET /`` and ``GET /threads/{thread_id}`` of one agent (control routes: no auth, not recorded)."""

    def __init__(self, agent: FakeSreAgent) -> None:
        """Pages of ``agent``; :meth:`register` adds them to its routes."""
        self.agent = agent

    def register(self) -> None:
        """Add the pages to the agent's routes."""
        self.agent.route("GET", "/", self.index, control=True)
        self.agent.route("GET", "/threads/{thread_id}", self.thread, control=True)

    async def index(self, call: Call) -> Response:
        """The agent's threads."""
        html_text = render_index(self.agent.name, self.agent.resource_id, self.agent.threads())
        return HTMLResponse(html_text, headers=PAGE_HEADERS)

    async def thread(self, call: Call) -> Response:
        """One thread's messages (404 page for an unknown id)."""
        with self.agent.lock:
            try:
                thread_id = thread_or_404(self.agent.store, call.params["thread_id"]).id
            except HttpError:
                body = _page("Not found", '<p>No such thread. <a href="/">All threads</a></p>')
                return HTMLResponse(body, 404, headers=PAGE_HEADERS)
        return HTMLResponse(
            render_thread(self.agent.name, self.agent.thread(thread_id)), headers=PAGE_HEADERS
        )
