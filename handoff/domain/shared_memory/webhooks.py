"""The vendors' webhooks: how each proves itself (an HMAC-SHA256 signature, or for Jira Automation and
ServiceNow the shared secret itself; all compared in constant time) and the events read as
:class:`HumanEntry` (GitHub ``issue_comment`` ``created``, PagerDuty v3 ``incident.annotated``, Jira
``comment_created``, the broker's ServiceNow business rule). Everything else is ignored, with the reason.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from collections.abc import Mapping
from datetime import datetime

from handoff.domain.errors import Unprocessable
from handoff.domain.markdown import https_url
from handoff.domain.shared_memory.config import (
    GitHubBackend,
    JiraBackend,
    PagerDutyBackend,
    ServiceNowBackend,
    WebhookBackend,
)
from handoff.domain.shared_memory.destinations import destination_key
from handoff.domain.shared_memory.human_entries import HumanEntry, entry_time
from handoff.domain.shared_memory.vendor_entries import field, github_entry, jira_entry, servicenow_entry

MAX_WEBHOOK_BYTES = 1_048_576
MAX_DELIVERY_ID = 100
# At most this many signatures are compared (a rotation lists two or three).
MAX_SIGNATURES = 10
# The header that carries the shared secret itself (Jira Automation's "Send web request", ServiceNow's
# outbound REST message): the senders that cannot compute an HMAC of the body.
TOKEN_HEADER = "X-Handoff-Webhook-Token"  # noqa: S105 - a header name, not a secret
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


def verify_token(secret: str, header_value: str | None) -> bool:
    """The shared secret itself in :data:`TOKEN_HEADER`; digests are compared, so the time taken says
    nothing of the secret, not even its length."""
    if not secret or not header_value:
        return False
    given = hashlib.sha256(header_value.strip().encode()).digest()
    return hmac.compare_digest(hashlib.sha256(secret.encode()).digest(), given)


def verify_jira(backend: JiraBackend, secret: str, body: bytes, headers: Mapping[str, str]) -> bool:
    """An admin webhook's signature (``sha256=<hex HMAC-SHA256 of the raw body>`` in
    ``webhookSignatureHeader``) or an Automation rule's token, as ``webhookAuth`` allows."""
    genuine = False
    if "signature" in backend.webhook_auth:
        genuine |= verify_github(secret, body, headers.get(backend.webhook_signature_header.lower()))
    if "token" in backend.webhook_auth:
        genuine |= verify_token(secret, headers.get(TOKEN_HEADER.lower()))
    return genuine


def is_genuine(backend: WebhookBackend, secret: str, body: bytes, headers: Mapping[str, str]) -> bool:
    """Whether the delivery proves it comes from the vendor (``headers`` with lower-case names)."""
    if backend.type == "github":
        return verify_github(secret, body, headers.get("x-hub-signature-256"))
    if backend.type == "pagerduty":
        return verify_pagerduty(secret, body, headers.get("x-pagerduty-signature"))
    if backend.type == "jira":
        return verify_jira(backend, secret, body, headers)
    return verify_token(secret, headers.get(TOKEN_HEADER.lower()))


def read_delivery(
    backend: WebhookBackend, headers: Mapping[str, str], data: object, now: datetime
) -> Reading:
    """The person's entry in a verified delivery (``headers`` with lower-case names), or None and why
    it is ignored; 422 when the event lacks what its kind always carries."""
    if backend.type == "github":
        delivery = str(headers.get("x-github-delivery") or "")[:MAX_DELIVERY_ID]
        return parse_github(backend, str(headers.get("x-github-event") or ""), delivery, data, now)
    if backend.type == "pagerduty":
        return parse_pagerduty(backend, data, now)
    if backend.type == "jira":
        delivery = str(headers.get("x-atlassian-webhook-identifier") or "")[:MAX_DELIVERY_ID]
        return parse_jira(backend, delivery, data, now)
    return parse_servicenow(backend, data, now)


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
    repo = field(data, "repository", "full_name")
    if not isinstance(comment, dict) or not isinstance(issue, dict) or not isinstance(repo, str):
        raise Unprocessable("issue_comment event without comment, issue or repository.full_name")
    number, comment_id = issue.get("number"), comment.get("id")
    if not isinstance(number, int) or not isinstance(comment_id, int | str) or not str(comment_id):
        raise Unprocessable("issue_comment event without issue.number or comment.id")
    if not backend.may_write_to(repo):
        return None, "repository not configured for this backend"
    return github_entry(backend, repo, number, comment, delivery, now), ""


def parse_pagerduty(backend: PagerDutyBackend, data: object, now: datetime) -> Reading:
    """The entry of a PagerDuty v3 ``incident.annotated`` event, or None and why it is ignored."""
    event = data.get("event") if isinstance(data, dict) else None
    if not isinstance(event, dict):
        raise Unprocessable("not a PagerDuty v3 webhook (no event object)")
    event_type = str(event.get("event_type") or "")
    if event_type != "incident.annotated":
        return None, f"event {event_type or '(none)'} is not read"
    note = _object(event.get("data"))
    incident = field(note, "incident", "id")
    event_id = str(event.get("id") or "")
    if not isinstance(incident, str) or not incident or not event_id:
        raise Unprocessable("incident.annotated event without event.id or data.incident.id")
    destination = destination_key("pagerduty", {"incident": incident})
    if destination is None:
        return None, "data.incident.id is not a PagerDuty incident id"
    agent = _object(event.get("agent"))
    entry = HumanEntry(
        backend=backend.name,
        platform="pagerduty",
        # The note's id when PagerDuty sends it (a poll of the notes meets the same key), else the
        # event's.
        entry_id=str(note.get("id") or event_id),
        destination=destination,
        author=str(agent.get("summary") or agent.get("id") or "someone"),
        author_id=str(agent.get("id") or ""),
        at=entry_time(event.get("occurred_at"), now),
        text=str(note.get("content") or ""),
        url=https_url(field(note, "incident", "html_url")),
        delivery_id=event_id,
    )
    return entry, ""


def parse_jira(backend: JiraBackend, delivery: str, data: object, now: datetime) -> Reading:
    """The entry of a Jira ``comment_created`` event (an admin webhook, or an Automation rule that
    sends the same fields), or None and why it is ignored."""
    if not isinstance(data, dict):
        raise Unprocessable("not a Jira webhook (no JSON object)")
    event = str(data.get("webhookEvent") or "")
    if event != "comment_created":
        return None, f"event {event or '(none)'} is not read"
    comment, key = data.get("comment"), field(data, "issue", "key")
    if not isinstance(comment, dict) or not isinstance(key, str) or not key:
        raise Unprocessable("comment_created event without comment or issue.key")
    if not str(comment.get("id") or ""):
        raise Unprocessable("comment_created event without comment.id")
    if not backend.may_write_to(key):
        return None, "issue not configured for this backend"
    return jira_entry(backend, key, comment, delivery, now), ""


def parse_servicenow(backend: ServiceNowBackend, data: object, now: datetime) -> Reading:
    """The journal entry the broker's business rule sends, or None and why it is ignored."""
    if not isinstance(data, dict):
        raise Unprocessable("not a journal entry (no JSON object)")
    if not str(data.get("sys_id") or "") or not str(data.get("element_id") or ""):
        raise Unprocessable("journal entry without sys_id or element_id")
    element = str(data.get("element") or backend.field)
    if element != backend.field:
        return None, f"journal field {element} is not read by this backend"
    table = str(data.get("name") or data.get("table") or backend.table)
    if table != backend.table:
        return None, f"table {table} is not this backend's"
    return servicenow_entry(backend, data, now), ""
