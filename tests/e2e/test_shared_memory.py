"""Shared memory through the running broker: one note per backend per hand-back (exactly once, even when
the vendor's answer is lost), vendor-specific shapes, rate limits, outages that delay only their own
backend, give-up and replay."""

from __future__ import annotations

import time
import uuid
from typing import Any

from devserver.fakes.openapi_check import adf_errors
from tests.e2e.helpers import handback_body, handoff_body
from tests.support.vendors import FROM_EMAIL, JIRA_ISSUE, MEMORY_AGENT, REPO


def _start(broker: Any, incident: dict[str, Any] | None = None, **extra: Any) -> str:
    body = handoff_body(None, target=MEMORY_AGENT, **extra)
    if incident is None:
        body["context"].pop("incident")
    else:
        body["context"]["incident"] = incident
    response = broker.client.post("/api/handoffs", json=body)
    assert response.status_code == 202, response.text
    handoff_id = response.json()["id"]
    broker.wait_status(handoff_id, "delivered", timeout=20)
    return handoff_id


def _hand_back(broker: Any, handoff_id: str, **extra: Any) -> None:
    response = broker.client.post(
        f"/api/handoffs/{handoff_id}/handback", json=handback_body(MEMORY_AGENT, **extra)
    )
    assert response.status_code == 202, response.text


def _events(broker: Any, handoff_id: str) -> list[dict[str, Any]]:
    return broker.client.get(f"/api/handoffs/{handoff_id}/audit").json()["events"]


def _settled(broker: Any, handoff_id: str, backends: set[str], timeout: float = 30) -> list[dict[str, Any]]:
    """Wait until every backend's hand-back write is written, skipped or failed; returns the audit."""
    deadline = time.monotonic() + timeout
    events: list[dict[str, Any]] = []
    while time.monotonic() < deadline:
        events = _events(broker, handoff_id)
        done = {
            e["details"]["backend"]
            for e in events
            if e["type"]
            in ("sharedMemoryWritten", "sharedMemorySkipped", "sharedMemoryFailed", "sharedMemoryWarning")
            and e["details"]["point"] == "handedBack"
        }
        if backends <= done:
            return events
        time.sleep(0.1)
    raise AssertionError(f"shared-memory writes did not settle: {[e['type'] for e in events]}")


ALL = {"gh", "pd", "jira", "snow", "snow-comments"}


def _jira_incident(vendors: Any) -> dict[str, Any]:
    """A Jira issue of this test only, so injected faults cannot touch other tests' writes."""
    key = f"OPS-{uuid.uuid4().int % 10**6 + 100}"
    vendors.jira.add_issue(key)
    return {"id": key, "platform": "jira"}


def _marker(handoff_id: str, backend: str, point: str = "handedBack", seq: int = 1) -> str:
    return f"handoff-memory: {handoff_id}/{point}:{seq}/{backend}"


def _pd_incident(vendors: Any) -> dict[str, Any]:
    incident_id = "P" + uuid.uuid4().hex[:6].upper()
    vendors.pagerduty.add_incident(incident_id)
    return {"id": incident_id, "platform": "pagerduty"}


def _chain_issue(vendors: Any, root_id: str) -> list[dict[str, Any]]:
    needle = f"handoff-memory-chain: {root_id}/gh"
    return [i for i in vendors.github.issues(REPO) if needle in (i["body"] or "")]


def test_hand_back_writes_exactly_one_note_per_backend_even_when_answers_are_lost(broker, vendors):
    vendors.clear_faults()
    incident = _pd_incident(vendors)
    handoff_id = _start(broker, incident)
    # Each vendor performs the write, then the answer is lost: the retry must find the marker. The faults
    # are aimed at this handoff's notes, so work other tests left behind cannot use them up.
    vendors.github.inject("POST", "/repos/*/*/issues/*/comments", 502, perform=True, body_contains=handoff_id)
    vendors.pagerduty.inject("POST", "/incidents/*/notes", 503, perform=True, body_contains=handoff_id)
    vendors.jira.inject("POST", "/rest/api/3/issue/*/comment", 500, perform=True, body_contains=handoff_id)
    _hand_back(broker, handoff_id)
    events = _settled(broker, handoff_id, {"gh", "pd", "jira", "snow", "snow-comments"})

    issue = _chain_issue(vendors, handoff_id)
    assert len(issue) == 1
    gh = [
        c for c in vendors.github.comments(REPO, issue[0]["number"]) if _marker(handoff_id, "gh") in c["body"]
    ]
    pd = [n for n in vendors.pagerduty.notes(incident["id"]) if _marker(handoff_id, "pd") in n["content"]]
    jira = [c for c in vendors.jira.comments(JIRA_ISSUE) if _marker(handoff_id, "jira") in str(c["body"])]
    assert (len(gh), len(pd), len(jira)) == (1, 1, 1)
    written = {e["details"]["backend"]: e["details"] for e in events if e["type"] == "sharedMemoryWritten"}
    assert {name: written[name]["foundExisting"] for name in ("gh", "pd", "jira")} == {
        "gh": True,
        "pd": True,
        "jira": True,
    }
    skipped = {e["details"]["backend"] for e in events if e["type"] == "sharedMemorySkipped"}
    assert skipped == {"snow", "snow-comments"}  # no ServiceNow incident on this handoff
    attempts = [e for e in events if e["type"] == "sharedMemoryAttempt"]
    assert {a["details"]["backend"] for a in attempts} == {"gh", "pd", "jira"}
    assert all(a["details"]["marker"].startswith(f"handoff-memory: {handoff_id}/") for a in attempts)
    for fake in vendors.all():
        assert fake.rejected == []


def test_content_per_backend_github_markdown_pagerduty_plain_text_jira_adf(broker, vendors):
    vendors.clear_faults()
    incident = _pd_incident(vendors)
    handoff_id = _start(broker, incident)
    _hand_back(broker, handoff_id)
    _settled(broker, handoff_id, ALL)

    comment = next(
        c
        for c in vendors.github.comments(REPO, _chain_issue(vendors, handoff_id)[0]["number"])
        if _marker(handoff_id, "gh") in c["body"]
    )
    assert "```mermaid\nsequenceDiagram" in comment["body"]
    assert "ops->>inventory" in comment["body"] and "inventory-->>ops" in comment["body"]
    assert "Deployment 2026.11.21.3 lowered Max Pool Size to 10" in comment["body"]
    assert f"/api/handoffs/{handoff_id}/audit" in comment["body"]
    request = vendors.github.requests("POST", f"/repos/{REPO}/issues/*/comments")[-1]
    assert request["headers"]["accept"] == "application/vnd.github+json"
    assert request["headers"]["x-github-api-version"] == "2022-11-28"
    assert request["headers"]["authorization"] == "Bearer ***"

    note = next(
        n for n in vendors.pagerduty.notes(incident["id"]) if _marker(handoff_id, "pd") in n["content"]
    )
    assert "```" not in note["content"] and "<!--" not in note["content"]
    assert "Root cause: Deployment 2026.11.21.3" in note["content"]
    post = vendors.pagerduty.requests("POST", f"/incidents/{incident['id']}/notes")[-1]
    assert post["headers"]["from"] == FROM_EMAIL
    assert post["headers"]["authorization"] == "Token ***"  # the fake accepts only "Token token=<key>"
    assert post["headers"]["accept"] == "application/vnd.pagerduty+json;version=2"

    jira = next(c for c in vendors.jira.comments(JIRA_ISSUE) if _marker(handoff_id, "jira") in str(c["body"]))
    assert adf_errors(jira["body"]) == []
    blocks = [n for n in jira["body"]["content"] if n["type"] == "codeBlock"]
    assert blocks and blocks[0]["attrs"]["language"] == "mermaid"
    assert vendors.jira.requests("POST")[-1]["headers"]["authorization"] == "Basic ***"


def test_servicenow_work_notes_and_comments(broker, vendors):
    vendors.clear_faults()
    number = f"INC{uuid.uuid4().int % 10**7:07d}"
    sys_id = vendors.servicenow.add_record(number)
    handoff_id = _start(broker, {"id": number, "platform": "servicenow"})
    _hand_back(broker, handoff_id)
    _settled(broker, handoff_id, ALL)
    work_notes = vendors.servicenow.journal(sys_id, "work_notes")
    comments = vendors.servicenow.journal(sys_id, "comments")
    assert [_marker(handoff_id, "snow") in j["value"] for j in work_notes] == [True]
    assert [_marker(handoff_id, "snow-comments") in j["value"] for j in comments] == [True]
    patch = vendors.servicenow.requests("PATCH", f"/api/now/table/incident/{sys_id}")
    assert {tuple(r["json"]) for r in patch} == {("work_notes",), ("comments",)}
    assert all(r["headers"]["content-type"] == "application/json" for r in patch)


def test_github_issue_is_opened_once_per_investigation_chain(broker, vendors):
    vendors.clear_faults()
    # GitHub opens the issue, then the answer is lost: the retry must find it by its marker.
    vendors.github.inject("POST", f"/repos/{REPO}/issues", 503, perform=True)
    root = _start(broker, None)
    _hand_back(broker, root)
    _settled(broker, root, ALL)
    child = _start(broker, None, parentHandoffId=root)
    _hand_back(broker, child)
    _settled(broker, child, ALL)
    issues = _chain_issue(vendors, root)
    assert len(issues) == 1
    bodies = [c["body"] for c in vendors.github.comments(REPO, issues[0]["number"])]
    assert sum(_marker(root, "gh") in b for b in bodies) == 1
    assert sum(_marker(child, "gh") in b for b in bodies) == 1
    assert _chain_issue(vendors, child) == []


def test_backend_down_delays_only_its_own_writes(broker, vendors):
    vendors.clear_faults()
    vendors.pagerduty.inject(None, "/incidents/**", 503, times=None)
    incident = _pd_incident(vendors)
    first = _start(broker, incident)
    _hand_back(broker, first)
    # Everything else flows while PagerDuty is down: other backends' writes, new handoffs, hand-backs.
    _settled(broker, first, {"gh", "jira"})
    second = _start(broker, incident)
    _hand_back(broker, second)
    broker.wait_status(second, "handedBack", timeout=20)
    _settled(broker, second, {"gh", "jira"})
    assert vendors.pagerduty.notes(incident["id"]) == []
    retries = [e for e in _events(broker, first) if e["type"] == "sharedMemoryRetryScheduled"]
    assert retries and all(e["details"]["backend"] == "pd" for e in retries)
    vendors.pagerduty.clear_faults()
    _settled(broker, first, ALL)
    _settled(broker, second, ALL)
    notes = [n["content"] for n in vendors.pagerduty.notes(incident["id"])]
    assert sum(_marker(first, "pd") in n for n in notes) == 1
    assert sum(_marker(second, "pd") in n for n in notes) == 1


def test_rate_limits_are_honoured(broker, vendors):
    vendors.clear_faults()
    incident = _pd_incident(vendors)
    handoff_id = _start(broker, incident)
    vendors.github.secondary_limit(times=1, retry_after=2)
    vendors.pagerduty.rate_limit(times=1, reset_seconds=2)
    vendors.jira.rate_limit(times=1, retry_after=2)
    _hand_back(broker, handoff_id)
    events = _settled(broker, handoff_id, ALL)
    retries = {
        e["details"]["backend"]: e["details"] for e in events if e["type"] == "sharedMemoryRetryScheduled"
    }
    assert set(retries) >= {"gh", "pd", "jira"}
    assert all(
        retries[name]["rateLimited"] and retries[name]["delaySeconds"] >= 1.5 for name in ("gh", "pd", "jira")
    )
    written = {e["details"]["backend"] for e in events if e["type"] == "sharedMemoryWritten"}
    assert written >= {"gh", "pd", "jira"}


def test_github_content_writes_are_spaced_per_repository(broker, vendors):
    vendors.clear_faults()
    vendors.github.min_content_interval = 0.15  # the broker spaces by 0.4 s: the fake must never object
    try:
        ids = [_start(broker, None) for _ in range(2)]
        for handoff_id in ids:
            _hand_back(broker, handoff_id)
        for handoff_id in ids:
            _settled(broker, handoff_id, ALL)
    finally:
        vendors.github.min_content_interval = 0.0
    assert vendors.github.secondary_hits == 0


def test_pagerduty_note_cap_stops_with_an_audit_warning(broker, vendors):
    vendors.clear_faults()
    incident_id = "P" + uuid.uuid4().hex[:6].upper()
    vendors.pagerduty.add_incident(incident_id, notes=1990)
    handoff_id = _start(broker, {"id": incident_id, "platform": "pagerduty"})
    _hand_back(broker, handoff_id)
    events = _settled(broker, handoff_id, ALL)
    warning = next(e for e in events if e["type"] == "sharedMemoryWarning")
    assert "2,000" in warning["details"]["reason"]
    assert len(vendors.pagerduty.notes(incident_id)) == 1990


def test_failed_write_is_audited_and_replayable(broker, vendors):
    vendors.clear_faults()
    incident = _jira_incident(vendors)
    path = f"/rest/api/3/issue/{incident['id']}/comment"
    vendors.jira.inject("POST", path, 400, body={"errorMessages": ["nope"], "errors": {}})
    handoff_id = _start(broker, incident)
    _hand_back(broker, handoff_id)
    events = _settled(broker, handoff_id, ALL)
    failed = next(e for e in events if e["type"] == "sharedMemoryFailed")
    assert failed["details"]["backend"] == "jira" and "400" in failed["details"]["reason"]
    writes = broker.client.get(f"/api/handoffs/{handoff_id}/shared-memory").json()["writes"]
    assert {w["backend"]: w["status"] for w in writes}["jira"] == "failed"

    bad = broker.client.post(f"/api/handoffs/{handoff_id}/shared-memory/replay", json={"backend": "nope"})
    assert bad.status_code == 422 and bad.json()["errors"][0]["field"] == "/backend"
    replay = broker.client.post(f"/api/handoffs/{handoff_id}/shared-memory/replay", json={"backend": "jira"})
    assert replay.status_code == 202
    assert replay.json()["replayed"] == [{"backend": "jira", "point": "handedBack", "seq": 1}]
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        if any(_marker(handoff_id, "jira") in str(c["body"]) for c in vendors.jira.comments(incident["id"])):
            break
        time.sleep(0.1)
    assert (
        sum(_marker(handoff_id, "jira") in str(c["body"]) for c in vendors.jira.comments(incident["id"])) == 1
    )
    again = broker.client.post(f"/api/handoffs/{handoff_id}/shared-memory/replay")
    assert again.status_code == 200 and again.json()["replayed"] == []


def test_write_that_keeps_failing_gives_up_after_the_max_age(broker, vendors):
    vendors.clear_faults()
    incident = _jira_incident(vendors)
    vendors.jira.inject("POST", f"/rest/api/3/issue/{incident['id']}/comment", 503, times=None)
    try:
        handoff_id = _start(broker, incident)
        _hand_back(broker, handoff_id)
        events = _settled(broker, handoff_id, ALL, timeout=30)
    finally:
        vendors.jira.clear_faults()
    failed = next(e for e in events if e["type"] == "sharedMemoryFailed")
    assert "gave up" in failed["details"]["reason"]
    assert broker.client.get(f"/api/handoffs/{handoff_id}").json()["status"] == "handedBack"
