"""The vendors' signed webhooks: signature checks (HMAC-SHA256, compared in constant time) and the
events read as :class:`HumanEntry` (GitHub ``issue_comment`` ``created``, PagerDuty v3
``incident.annotated``). Everything else a vendor sends is ignored, with the reason."""

from __future__ import annotations

import hashlib
import hmac
import re
from collections.abc import Mapping
from datetime import datetime

from handoff.domain.errors import Unprocessable
from handoff.domain.markdown import https_url
from handoff.domain.shared_memory.config import GitHubBackend, PagerDutyBackend, WebhookBackend
from handoff.domain.shared_memory.destinations import destination_key
from handoff.domain.shared_memory.human_entries import HumanEntry, entry_time

MAX_WEBHOOK_BYTES = 1_048_576
MAX_DELIVERY_ID = 100
# At most this many signatures are compared (a rotation lists two or three).
MAX_SIGNATURES = 10
_HEX64 = re.compile(r"^[0-9a-fA-F]{64}$")

# (entry, "") when the event is a person's entry; (None, why) when it is not read.
Reading = tuple[HumanEntry | None, str]


def _hmac_hex(secret: str, body: bytes) -> str:
    return hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def verify_github(secret: str, body: bytes, header_value: str | None) -> bool:
    """GitHub's ``X-Hub-Signature-256``: ``sha256=`` and the hex HMAC-SHA256 of the raw body, compared
    in constant time."""
    if not secret or not header_value or not header_value.startswith("sha256="):
        return False
    given = header_value[len("sha256=") :].strip()
    if not _HEX64.match(given):
        return False
    return hmac.compare_digest(_hmac_hex(secret, body), given.lower())


def verify_pagerduty(secret: str, body: bytes, header_value: str | None) -> bool:
    """PagerDuty v3's ``X-PagerDuty-Signature``: comma-separated ``v1=<hex HMAC-SHA256>``; genuine when
    any one matches (several appear while a secret is rotated). Every candidate is compared."""
    if not secret or not header_value:
        return False
    expected = _hmac_hex(secret, body)
    matched = False
    for part in header_value.split(",")[:MAX_SIGNATURES]:
        version, _, value = part.strip().partition("=")
        if version == "v1" and _HEX64.match(value):
            matched |= hmac.compare_digest(expected, value.lower())
    return matched


def is_genuine(backend: WebhookBackend, secret: str, body: bytes, headers: Mapping[str, str]) -> bool:
    """Whether the delivery carries the vendor's valid signature (``headers`` with lower-case names)."""
    if backend.type == "github":
        return verify_github(secret, body, headers.get("x-hub-signature-256"))
    return verify_pagerduty(secret, body, headers.get("x-pagerduty-signature"))


def read_delivery(
    backend: WebhookBackend, headers: Mapping[str, str], data: object, now: datetime
) -> Reading:
    """The person's entry in a verified delivery (``headers`` with lower-case names), or None and why
    it is ignored; 422 when the event lacks what its kind always carries."""
    if backend.type == "github":
        delivery = str(headers.get("x-github-delivery") or "")[:MAX_DELIVERY_ID]
        return parse_github(backend, str(headers.get("x-github-event") or ""), delivery, data, now)
    return parse_pagerduty(backend, data, now)


def _field(value: object, *names: str) -> object:
    for name in names:
        value = value.get(name) if isinstance(value, dict) else None
    return value


def _object(value: object) -> dict[str, object]:
    return value if isinstance(value, dict) else {}


def parse_github(backend: GitHubBackend, event: str, delivery: str, data: object, now: datetime) -> Reading:
    """The entry of a GitHub ``issue_comment`` ``created`` event, or None and why it is ignored."""
    if event == "ping":
        return None, "ping"
    if event != "issue_comment":
        return None, f"event {event or '(none)'} is not read"
    if not isinstance(data, dict) or data.get("action") != "created":
        return None, "only new comments are read"
    comment, issue = data.get("comment"), data.get("issue")
    repo = _field(data, "repository", "full_name")
    if not isinstance(comment, dict) or not isinstance(issue, dict) or not isinstance(repo, str):
        raise Unprocessable("issue_comment event without comment, issue or repository.full_name")
    number, comment_id = issue.get("number"), comment.get("id")
    if not isinstance(number, int) or not isinstance(comment_id, int | str) or not str(comment_id):
        raise Unprocessable("issue_comment event without issue.number or comment.id")
    if not backend.may_write_to(repo):
        return None, "repository not configured for this backend"
    login = str(_field(comment, "user", "login") or "")
    entry = HumanEntry(
        backend=backend.name,
        platform="github",
        entry_id=str(comment_id),
        destination=destination_key("github", {"repo": repo, "number": number}) or "",
        author=login,
        author_id=str(_field(comment, "user", "id") or login),
        at=entry_time(comment.get("created_at"), now),
        text=str(comment.get("body") or ""),
        url=https_url(comment.get("html_url")),
        delivery_id=delivery,
    )
    return entry, ""


def parse_pagerduty(backend: PagerDutyBackend, data: object, now: datetime) -> Reading:
    """The entry of a PagerDuty v3 ``incident.annotated`` event, or None and why it is ignored."""
    event = data.get("event") if isinstance(data, dict) else None
    if not isinstance(event, dict):
        raise Unprocessable("not a PagerDuty v3 webhook (no event object)")
    event_type = str(event.get("event_type") or "")
    if event_type != "incident.annotated":
        return None, f"event {event_type or '(none)'} is not read"
    note = _object(event.get("data"))
    incident = _field(note, "incident", "id")
    event_id = str(event.get("id") or "")
    if not isinstance(incident, str) or not incident or not event_id:
        raise Unprocessable("incident.annotated event without event.id or data.incident.id")
    agent = _object(event.get("agent"))
    entry = HumanEntry(
        backend=backend.name,
        platform="pagerduty",
        # The note's id when PagerDuty sends it (a poll of the notes meets the same key), else the
        # event's.
        entry_id=str(note.get("id") or event_id),
        destination=destination_key("pagerduty", {"incident": incident}) or "",
        author=str(agent.get("summary") or agent.get("id") or "someone"),
        author_id=str(agent.get("id") or ""),
        at=entry_time(event.get("occurred_at"), now),
        text=str(note.get("content") or ""),
        url=https_url(_field(note, "incident", "html_url")),
        delivery_id=event_id,
    )
    return entry, ""
