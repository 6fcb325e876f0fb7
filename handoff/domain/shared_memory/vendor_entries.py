"""A person's comment or note as each vendor's API and webhook carry it, read as a :class:`HumanEntry`.

The same object arrives in a webhook and in a poll of the record (GitHub's issue comment, Jira's
comment, a ServiceNow ``sys_journal_field`` row; PagerDuty's note differs a little), so both paths
build the entry here and meet on the same entry id.
"""

from __future__ import annotations

from datetime import datetime

from handoff.domain.markdown import https_url
from handoff.domain.shared_memory.config import GitHubBackend, JiraBackend, ServiceNowBackend
from handoff.domain.shared_memory.destinations import destination_key
from handoff.domain.shared_memory.human_entries import WIKI, HumanEntry, entry_time

# ADF nested deeper than this is not read further (a vendor's document, not a recursion bomb).
MAX_ADF_DEPTH = 40
# Inline ADF nodes that stand for text of their own (``attrs.text``, ``attrs.shortName``, ``attrs.url``).
_INLINE_ATTRS = {
    "mention": "text",
    "emoji": "shortName",
    "inlineCard": "url",
    "status": "text",
    "date": "timestamp",
}
# ADF nodes after which the text goes on on a new line.
_BLOCKS = frozenset(
    {"paragraph", "heading", "blockquote", "codeBlock", "listItem", "panel", "rule", "tableRow", "mediaGroup"}
)


def field(value: object, *names: str) -> object:
    """``value[names[0]][names[1]]...``, or None where one is missing or not an object."""
    for name in names:
        value = value.get(name) if isinstance(value, dict) else None
    return value


def text_of(value: object) -> str:
    """A string field's value, or ``""``."""
    return value if isinstance(value, str) else ("" if value is None else str(value))


def adf_plain(node: object, depth: int = 0) -> str:
    """The text of an Atlassian Document Format document as a person reads it: inline text joined,
    a line per block, mentions and emoji by their text. A plain string is returned as it is (Jira's
    v2 API, webhooks and Automation rules send the comment as wiki markup)."""
    if isinstance(node, str):
        return node
    if depth > MAX_ADF_DEPTH:
        return ""
    if isinstance(node, list):
        return "".join(adf_plain(child, depth + 1) for child in node)
    if not isinstance(node, dict):
        return ""
    kind = node.get("type")
    if kind == "text":
        return text_of(node.get("text"))
    if kind == "hardBreak":
        return "\n"
    if kind in _INLINE_ATTRS:
        return text_of(field(node, "attrs", _INLINE_ATTRS[str(kind)]))
    inner = adf_plain(node.get("content") or [], depth + 1)
    return inner.rstrip("\n") + "\n" if kind in _BLOCKS else inner


def github_entry(
    backend: GitHubBackend, repo: str, number: int, comment: dict[str, object], delivery: str, now: datetime
) -> HumanEntry:
    """An issue comment (``GET .../issues/{n}/comments`` item, or a webhook's ``comment``)."""
    login = text_of(field(comment, "user", "login"))
    return HumanEntry(
        backend=backend.name,
        platform="github",
        entry_id=text_of(comment.get("id")),
        destination=destination_key("github", {"repo": repo, "number": number}) or "",
        author=login,
        author_id=text_of(field(comment, "user", "id") or login),
        at=entry_time(comment.get("created_at"), now),
        text=text_of(comment.get("body")),
        url=https_url(comment.get("html_url")),
        delivery_id=delivery,
        author_login=login,
    )


def pagerduty_note_entry(
    backend_name: str, incident: str, note: dict[str, object], html_url: object, now: datetime
) -> HumanEntry:
    """An incident note as ``GET /incidents/{id}/notes`` lists it (the webhook's note is read in
    :func:`handoff.domain.shared_memory.webhooks.parse_pagerduty`, with the same entry id)."""
    user = note.get("user")
    user = user if isinstance(user, dict) else {}
    return HumanEntry(
        backend=backend_name,
        platform="pagerduty",
        entry_id=text_of(note.get("id")),
        destination=destination_key("pagerduty", {"incident": incident}) or "",
        author=text_of(user.get("summary") or user.get("id") or "someone"),
        author_id=text_of(user.get("id")),
        at=entry_time(note.get("created_at"), now),
        text=text_of(note.get("content")),
        url=https_url(html_url),
        delivery_id="",
    )


def jira_entry(
    backend: JiraBackend, key: str, comment: dict[str, object], delivery: str, now: datetime
) -> HumanEntry:
    """A Jira comment (``GET /rest/api/3/issue/{key}/comment`` item, its body in ADF, or a webhook's
    ``comment``, its body in wiki markup)."""
    comment_id = text_of(comment.get("id"))
    author = field(comment, "author")
    body = comment.get("body")
    return HumanEntry(
        backend=backend.name,
        platform="jira",
        entry_id=comment_id,
        destination=destination_key("jira", {"key": key}) or "",
        author=text_of(field(author, "displayName") or field(author, "accountId") or "someone"),
        author_id=text_of(field(author, "accountId")),
        at=entry_time(comment.get("created"), now),
        text=adf_plain(body).strip("\n"),
        url=https_url(backend.issue_url(key.upper(), comment_id)),
        delivery_id=delivery,
        # A string is wiki markup: Jira's webhooks, Automation's {{comment.body}} and REST v2 send that.
        markup=WIKI if isinstance(body, str) else "",
    )


def servicenow_entry(backend: ServiceNowBackend, row: dict[str, object], now: datetime) -> HumanEntry:
    """A journal entry: a ``sys_journal_field`` row as the Table API answers it, or the same fields as
    the broker's business rule sends them (``sys_id``, ``element_id``, ``value``, ``sys_created_by``,
    ``sys_created_on`` in UTC)."""
    sys_id = text_of(row.get("element_id")).lower()
    user = text_of(row.get("sys_created_by"))
    return HumanEntry(
        backend=backend.name,
        platform="servicenow",
        entry_id=text_of(row.get("sys_id")),
        destination=destination_key("servicenow", {"sysId": sys_id}) or "",
        author=user or "someone",
        author_id=user,
        at=entry_time(row.get("sys_created_on"), now),
        text=text_of(row.get("value")),
        url=https_url(backend.record_url(sys_id)),
        delivery_id=text_of(row.get("sys_id")),
    )
