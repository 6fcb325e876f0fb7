"""Which record of a backend a handoff writes to, as far as the handoff and the configuration say so
without asking the vendor, and the one key under which the broker indexes a record (people's entries
there are matched to investigations by it)."""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping

from handoff.domain.models import is_pagerduty_incident_id
from handoff.domain.records import HandoffRecord
from handoff.domain.shared_memory.config import Backend, GitHubBackend, JiraBackend

_ISSUE_REF = re.compile(r"^(?P<repo>[A-Za-z0-9_.-]+/[A-Za-z0-9_.-]+)#(?P<number>[0-9]+)$")
_SYS_ID = re.compile(r"^[0-9a-f]{32}$")
PAGERDUTY_INCIDENT_PROPERTY = "pagerdutyIncidentId"


def destination_key(platform: str, data: Mapping[str, object]) -> str | None:
    """The record of a write (a writer's ``Destination.data``) as one index key, or None."""
    if platform == "github" and data.get("repo") and data.get("number"):
        return f"{str(data['repo']).lower()}#{int(str(data['number']))}"
    if platform == "pagerduty" and data.get("incident"):
        # Only an id of PagerDuty's shape is a record: anything else is no key to index, poll or match.
        incident = str(data["incident"])
        return incident if is_pagerduty_incident_id(incident) else None
    if platform == "jira" and data.get("key"):
        return str(data["key"]).upper()
    if platform == "servicenow" and data.get("sysId"):
        return str(data["sysId"]).lower()
    return None


def _incident_on(record: HandoffRecord, platform: str) -> str | None:
    """The id of the handoff's ``context.incident`` when it is on ``platform``."""
    incident = record.stored.request.context.incident
    if incident and incident.is_on(platform):
        return incident.id.strip()
    return None


def github_issue(backend: GitHubBackend, record: HandoffRecord) -> tuple[str, int] | None:
    """``(repo, number)`` of the issue a handoff names (``owner/repo#N``), else the backend's fixed
    ``issue``; None when the write goes to the investigation chain's own issue.

    A reference to another repository is the caller's word, not the configuration's: the broker's
    token would write there on the caller's behalf, so it is followed only into repositories the
    backend names."""
    match = _ISSUE_REF.match(_incident_on(record, "github") or "")
    if match and backend.may_write_to(match["repo"]):
        return match["repo"], int(match["number"])
    if backend.issue:
        return backend.repo, backend.issue
    return None


def jira_issue(backend: JiraBackend, record: HandoffRecord) -> str | None:
    """The Jira issue key a handoff writes to: its incident's key inside the backend's ``project``, else
    the backend's fixed ``issue``; None when neither (or the key is outside the project).

    A caller's issue key is followed only inside the backend's project: the broker's token would
    otherwise comment on any issue it can reach."""
    reference = _incident_on(record, "jira")
    key = reference.upper() if reference and backend.project else None
    key = key or backend.issue
    if not key or (backend.project and not key.startswith(f"{backend.project}-")):
        return None
    return key


def pagerduty_incident(record: HandoffRecord, details: Mapping[str, object]) -> str | None:
    """The PagerDuty incident: the handoff's ``context.incident`` (platform ``pagerduty``), else the
    alert's custom property ``pagerdutyIncidentId`` (passed in the event details or carried in a
    ``data`` evidence item of the handoff); the first of these that is a PagerDuty incident id.

    An id of another shape is ignored wherever it comes from: it would name no incident to write to,
    and it must never become a key of the index (a ``context.incident`` is refused at the door, but an
    evidence item, an alert's property and a handoff stored before that rule are read as they are)."""
    for candidate in _pagerduty_candidates(record, details):
        incident = pagerduty_incident_id(str(candidate))
        if incident is not None:
            return incident
    return None


def pagerduty_incident_id(text: str) -> str | None:
    """``text`` without surrounding spaces if that is a PagerDuty incident id, else None."""
    incident = text.strip()
    return incident if is_pagerduty_incident_id(incident) else None


def _pagerduty_candidates(record: HandoffRecord, details: Mapping[str, object]) -> Iterator[object]:
    incident = _incident_on(record, "pagerduty")
    if incident is not None:
        yield incident
    if details.get(PAGERDUTY_INCIDENT_PROPERTY):
        yield details[PAGERDUTY_INCIDENT_PROPERTY]
    for item in record.stored.request.context.evidence:
        data = getattr(item, "data", None)
        if isinstance(data, dict):
            custom = data.get("customProperties")
            properties = custom if isinstance(custom, dict) else data
            if properties.get(PAGERDUTY_INCIDENT_PROPERTY):
                yield properties[PAGERDUTY_INCIDENT_PROPERTY]


def known_destination(backend: Backend, record: HandoffRecord, details: Mapping[str, object]) -> str | None:
    """The record a handoff names on ``backend`` without asking the vendor (its incident reference, an
    alert's PagerDuty incident, the backend's fixed issue, a ServiceNow incident named by its sys_id), so
    people can answer there while the investigation runs, before the broker has written anything. Chain
    issues, and ServiceNow incidents named by number, are indexed when first written."""
    if backend.type == "github":
        issue = github_issue(backend, record)
        return destination_key("github", {"repo": issue[0], "number": issue[1]}) if issue else None
    if backend.type == "pagerduty":
        found = pagerduty_incident(record, details)
        return destination_key("pagerduty", {"incident": found}) if found else None
    if backend.type == "jira":
        key = jira_issue(backend, record)
        return destination_key("jira", {"key": key}) if key else None
    sys_id = _incident_on(record, "servicenow") or ""
    return destination_key("servicenow", {"sysId": sys_id}) if _SYS_ID.match(sys_id) else None


def is_shared_record(backend: Backend, destination: str) -> bool:
    """A record many investigations write to (the backend's fixed ``issue``): an entry there belongs
    only to the investigations whose handoff id it quotes."""
    if backend.type == "github" and backend.issue:
        return destination == destination_key("github", {"repo": backend.repo, "number": backend.issue})
    if backend.type == "jira" and backend.issue:
        return destination == backend.issue.upper()
    return False
