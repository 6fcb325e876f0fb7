"""Humans in the loop through the running broker: a person's GitHub comment, PagerDuty note, Jira comment or
ServiceNow work note, sent as the vendor's webhook (exactly as documented), reaches the threads of both
agents of the investigation once; bad signatures, replays, the broker's own comments and closed
investigations post nothing. Where no webhook is set up, the broker polls the records instead (GitHub,
PagerDuty), with the same guarantees."""

from __future__ import annotations

import time
import uuid
from typing import Any

from tests.e2e.helpers import handback_body, handoff_body, messages_mentioning
from tests.support.vendors import (
    GITHUB_WEBHOOK_SECRET,
    JIRA_ACCOUNT,
    JIRA_WEBHOOK_SECRET,
    MEMORY_AGENT,
    PAGERDUTY_WEBHOOK_SECRET,
    POLL_AGENT,
    POLLED_REPO,
    REPO,
    SERVICENOW_WEBHOOK_SECRET,
)


def _investigation(
    broker: Any, fakes: Any, incident: dict[str, Any] | None, target: str = MEMORY_AGENT, **context: Any
) -> tuple[str, str, str]:
    """A delivered handoff ops -> ``target`` naming ``incident`` (none: no record at all):
    (id, ops thread, target's thread)."""
    ops_thread = fakes.agents["ops"].create_thread("Ops: checkout errors")["id"]
    body = handoff_body(ops_thread, target=target)
    body["context"].update(context)
    body["context"]["incident"] = incident
    if incident is None:
        del body["context"]["incident"]
    response = broker.client.post("/api/handoffs", json=body)
    assert response.status_code == 202, response.text
    handoff_id = response.json()["id"]
    view = broker.wait_status(handoff_id, "delivered", timeout=20)
    _wait_audit(broker, handoff_id, "crossLinked")  # the records it names are indexed by then
    return handoff_id, ops_thread, view["target"]["threadId"]


def _audit(broker: Any, handoff_id: str) -> list[dict[str, Any]]:
    return broker.client.get(f"/api/handoffs/{handoff_id}/audit").json()["events"]


def _wait_audit(broker: Any, handoff_id: str, kind: str, timeout: float = 15) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = [e for e in _audit(broker, handoff_id) if e["type"] == kind]
        if found:
            return found[-1]
        time.sleep(0.05)
    raise AssertionError(f"no {kind} in the audit of {handoff_id}")


def _posted(
    fakes: Any, ops_thread: str, inv_thread: str, needle: str, target: str = MEMORY_AGENT
) -> tuple[list, list]:
    return (
        messages_mentioning(fakes.agents["ops"], ops_thread, needle),
        messages_mentioning(fakes.agents[target], inv_thread, needle),
    )


def _wait_both(
    fakes: Any, ops_thread: str, inv_thread: str, needle: str, timeout: float = 15, target: str = MEMORY_AGENT
) -> float:
    start = time.monotonic()
    while time.monotonic() - start < timeout:
        ops, inv = _posted(fakes, ops_thread, inv_thread, needle, target)
        if ops and inv:
            return time.monotonic() - start
        time.sleep(0.02)
    raise AssertionError(f"{needle} did not reach both threads")


def _github_issue(vendors: Any) -> tuple[int, dict[str, str]]:
    number = vendors.github.add_issue(REPO, f"Checkout outage {uuid.uuid4().hex[:6]}")
    return number, {"id": f"{REPO}#{number}", "platform": "github"}


def _hook(broker: Any, backend: str) -> str:
    return f"{broker.url}/api/webhooks/{backend}"


def test_github_comment_reaches_both_threads_once_and_the_history(broker, vendors, fakes):
    number, incident = _github_issue(vendors)
    handoff_id, ops_thread, inv_thread = _investigation(broker, fakes, incident)
    comment = vendors.github.add_human_comment(
        REPO, number, "Customer impact is EU only.\nDB password=hunter2hunter2 is in the vault", login="alice"
    )
    event = vendors.github.issue_comment_event(REPO, number, comment)

    sent = time.monotonic()
    response = vendors.github.send_webhook(_hook(broker, "gh"), GITHUB_WEBHOOK_SECRET, "issue_comment", event)
    assert response.status_code == 202, response.text
    assert response.json() == {"status": "queued", "investigations": 1, "override": False}
    needle = f"{handoff_id}/human:gh:{comment['id']}"
    _wait_both(fakes, ops_thread, inv_thread, needle)
    took = time.monotonic() - sent
    print(f"\nwebhook to both threads: {took:.2f}s")  # a figure, not a check: the wait above bounds it

    ops, inv = _posted(fakes, ops_thread, inv_thread, needle)
    assert len(ops) == len(inv) == 1
    text = ops[0]["text"]
    lines = text.splitlines()
    assert lines[0].startswith(f"[Handoff {handoff_id}] Human note from @alice on GitHub, ")
    assert lines[-1] == f"handoff-ref: {needle}"
    assert "> Customer impact is EU only." in text
    assert "hunter2hunter2" not in text  # redacted
    assert f"Original: [GitHub]({comment['html_url']})" in text
    note = _wait_audit(broker, handoff_id, "humanNote")
    assert note["details"]["entryId"] == str(comment["id"]) and note["details"]["threads"] == 2
    assert _wait_audit(broker, handoff_id, "humanEntryPosted")["details"]["threads"] == 2

    # Ping (sent when the webhook is created) is answered and ignored.
    ping = vendors.github.send_webhook(_hook(broker, "gh"), GITHUB_WEBHOOK_SECRET, "ping", {"zen": "Keep it"})
    assert ping.status_code == 200 and ping.json()["status"] == "ignored"

    # The hand-back closes the investigation; the history lists the note with it.
    handback = broker.client.post(f"/api/handoffs/{handoff_id}/handback", json=handback_body(MEMORY_AGENT))
    assert handback.status_code == 202
    broker.wait_status(handoff_id, "handedBack", timeout=20)
    items = broker.client.get("/api/history", params={"agent": MEMORY_AGENT, "top": 100}).json()["items"]
    item = next(i for i in items if i["handoffId"] == handoff_id)
    assert [n["entryId"] for n in item["humanNotes"]] == [str(comment["id"])]
    assert (
        item["humanNotes"][0]["author"] == "alice" and "hunter2hunter2" not in item["humanNotes"][0]["text"]
    )

    # An entry on the closed investigation is ignored.
    late = vendors.github.add_human_comment(REPO, number, "Any news?", login="bob")
    response = vendors.github.send_webhook(
        _hook(broker, "gh"),
        GITHUB_WEBHOOK_SECRET,
        "issue_comment",
        vendors.github.issue_comment_event(REPO, number, late),
    )
    assert response.status_code == 200 and response.json()["status"] == "ignored"
    time.sleep(1)
    assert _posted(fakes, ops_thread, inv_thread, f"human:gh:{late['id']}") == ([], [])


def test_bad_or_missing_signature_is_401_and_posts_nothing(broker, vendors, fakes):
    start = len(broker.logs())
    number, incident = _github_issue(vendors)
    handoff_id, ops_thread, inv_thread = _investigation(broker, fakes, incident)
    comment = vendors.github.add_human_comment(REPO, number, "override: roll back now")
    event = vendors.github.issue_comment_event(REPO, number, comment)
    url = _hook(broker, "gh")
    for response in (
        vendors.github.send_webhook(url, "not-the-secret", "issue_comment", event),
        vendors.github.send_webhook(url, GITHUB_WEBHOOK_SECRET, "issue_comment", event, signature=""),
        vendors.github.send_webhook(
            url, GITHUB_WEBHOOK_SECRET, "issue_comment", event, signature="sha256=00"
        ),
        vendors.pagerduty.send_webhook(_hook(broker, "pd"), ("wrong",), {"event": {}}),
    ):
        assert response.status_code == 401, response.text
        assert response.headers["content-type"].startswith("application/problem+json")
    unknown = vendors.github.send_webhook(
        _hook(broker, "nope"), GITHUB_WEBHOOK_SECRET, "issue_comment", event
    )
    assert unknown.status_code == 404
    no_webhook = vendors.github.send_webhook(
        _hook(broker, "snow-comments"), GITHUB_WEBHOOK_SECRET, "issue_comment", event
    )
    assert no_webhook.status_code == 404  # a backend without webhookSecretSetting takes none
    time.sleep(1)
    assert _posted(fakes, ops_thread, inv_thread, "human:gh:") == ([], [])
    assert not [e for e in _audit(broker, handoff_id) if e["type"].startswith("human")]
    refused = "refused: caller=local action='deliver a webhook' resource='webhooks/gh' status=401"
    _wait_log(broker, refused, since=start)
    # The signature was never the problem of the entry: signed correctly, it is taken (once).
    ok = vendors.github.send_webhook(url, GITHUB_WEBHOOK_SECRET, "issue_comment", event)
    assert ok.status_code == 202


def test_replayed_delivery_posts_once(broker, vendors, fakes):
    number, incident = _github_issue(vendors)
    handoff_id, ops_thread, inv_thread = _investigation(broker, fakes, incident)
    comment = vendors.github.add_human_comment(REPO, number, "Saw the same last week: pool size.")
    event = vendors.github.issue_comment_event(REPO, number, comment)
    delivery = str(uuid.uuid4())
    url = _hook(broker, "gh")
    first = vendors.github.send_webhook(url, GITHUB_WEBHOOK_SECRET, "issue_comment", event, delivery=delivery)
    replay = vendors.github.send_webhook(
        url, GITHUB_WEBHOOK_SECRET, "issue_comment", event, delivery=delivery
    )
    redelivered = vendors.github.send_webhook(url, GITHUB_WEBHOOK_SECRET, "issue_comment", event)
    assert (first.status_code, replay.status_code, redelivered.status_code) == (202, 200, 200)
    assert replay.json() == {"status": "duplicate"}
    needle = f"{handoff_id}/human:gh:{comment['id']}"
    _wait_both(fakes, ops_thread, inv_thread, needle)
    time.sleep(1)
    ops, inv = _posted(fakes, ops_thread, inv_thread, needle)
    assert (len(ops), len(inv)) == (1, 1)
    assert len([e for e in _audit(broker, handoff_id) if e["type"] == "humanNote"]) == 1


def test_the_brokers_own_comments_are_not_read_back(broker, vendors, fakes):
    number, incident = _github_issue(vendors)
    handoff_id, ops_thread, inv_thread = _investigation(broker, fakes, incident)
    url = _hook(broker, "gh")
    own = vendors.github.add_human_comment(REPO, number, "Handed off to inventory", login="handoff-bot")
    marker_line = f"<!-- handoff-memory: {handoff_id}/delivered:0/gh -->"
    marked = vendors.github.add_human_comment(REPO, number, f"Findings\n\n{marker_line}", login="handoff-bot")
    for comment in (own, marked):
        event = vendors.github.issue_comment_event(REPO, number, comment)
        response = vendors.github.send_webhook(url, GITHUB_WEBHOOK_SECRET, "issue_comment", event)
        assert response.status_code == 200 and response.json()["status"] == "ignored", response.text
    # An issue no investigation is on: logged and ignored.
    other = vendors.github.add_issue(REPO, "Unrelated")
    stray = vendors.github.add_human_comment(REPO, other, "hello")
    response = vendors.github.send_webhook(
        url, GITHUB_WEBHOOK_SECRET, "issue_comment", vendors.github.issue_comment_event(REPO, other, stray)
    )
    assert response.status_code == 200 and response.json()["status"] == "ignored"
    time.sleep(1)
    assert _posted(fakes, ops_thread, inv_thread, "human:gh:") == ([], [])
    # Someone else who copies the broker's marker line is a person all the same: the agents get it.
    copied = vendors.github.add_human_comment(REPO, number, f"Not the pool\n\n{marker_line}", login="someone")
    event = vendors.github.issue_comment_event(REPO, number, copied)
    response = vendors.github.send_webhook(url, GITHUB_WEBHOOK_SECRET, "issue_comment", event)
    assert response.status_code == 202, response.text
    _wait_both(fakes, ops_thread, inv_thread, f"{handoff_id}/human:gh:{copied['id']}")


def test_pagerduty_note_with_an_override_word_and_rotated_secret(broker, vendors, fakes):
    incident_id = "P" + uuid.uuid4().hex[:6].upper()
    vendors.pagerduty.add_incident(incident_id)
    handoff_id, ops_thread, inv_thread = _investigation(
        broker, fakes, {"id": incident_id, "platform": "pagerduty"}
    )
    note = vendors.pagerduty.add_human_note(
        incident_id, "STOP: do not restart the primary, failover is running"
    )
    event = vendors.pagerduty.annotated_event(incident_id, note)
    # While a secret is rotated PagerDuty signs with both; one matching is enough.
    response = vendors.pagerduty.send_webhook(
        _hook(broker, "pd"), ("retired-secret", PAGERDUTY_WEBHOOK_SECRET), event
    )
    assert response.status_code == 202, response.text
    assert response.json()["override"] is True
    needle = f"{handoff_id}/human:pd:{note['id']}"
    took = _wait_both(fakes, ops_thread, inv_thread, needle)
    print(f"\nPagerDuty webhook to both threads: {took:.2f}s")
    ops, _ = _posted(fakes, ops_thread, inv_thread, needle)
    assert (
        ops[0]["text"]
        .splitlines()[0]
        .startswith(f"[Handoff {handoff_id}] Human override from @Alice Oncall on PagerDuty, ")
    )
    override = _wait_audit(broker, handoff_id, "humanOverride")
    assert override["details"]["entryId"] == note["id"]
    assert not [e for e in _audit(broker, handoff_id) if e["type"] == "humanNote"]
    # The same event again (PagerDuty retries): taken once.
    again = vendors.pagerduty.send_webhook(_hook(broker, "pd"), (PAGERDUTY_WEBHOOK_SECRET,), event)
    assert again.status_code == 200 and again.json() == {"status": "duplicate"}


# ---------------------------------------------------------------- Jira and ServiceNow webhooks


def _jira_issue(vendors: Any) -> str:
    key = f"OPS-{uuid.uuid4().int % 90000 + 100}"
    vendors.jira.add_issue(key)
    return key


def test_jira_comment_by_signed_webhook_and_by_automation_token(broker, vendors, fakes):
    key = _jira_issue(vendors)
    handoff_id, ops_thread, inv_thread = _investigation(broker, fakes, {"id": key, "platform": "jira"})
    url = _hook(broker, "jira")
    comment = vendors.jira.add_human_comment(
        key, "Customer impact is EU only.\nThe pool was resized at 02:00."
    )
    event = vendors.jira.comment_created_event(key, comment)
    delivery = str(uuid.uuid4())

    # An admin webhook with a secret signs the body; a retry of the delivery is taken once.
    response = vendors.jira.send_webhook(url, JIRA_WEBHOOK_SECRET, event, identifier=delivery)
    assert response.status_code == 202, response.text
    replay = vendors.jira.send_webhook(url, JIRA_WEBHOOK_SECRET, event, identifier=delivery)
    assert replay.status_code == 200 and replay.json() == {"status": "duplicate"}
    needle = f"{handoff_id}/human:jira:{comment['id']}"
    took = _wait_both(fakes, ops_thread, inv_thread, needle)
    print(f"\nJira webhook to both threads: {took:.2f}s")
    ops, inv = _posted(fakes, ops_thread, inv_thread, needle)
    assert len(ops) == len(inv) == 1
    text = ops[0]["text"]
    assert text.splitlines()[0].startswith(f"[Handoff {handoff_id}] Human note from @Alice Oncall on Jira, ")
    assert "> Customer impact is EU only.\n> The pool was resized at 02:00." in text

    # An Automation rule's web request carries the secret itself; an override is marked.
    override = vendors.jira.add_human_comment(key, "override: stop the failover, the primary is back")
    auto = vendors.jira.send_webhook(
        url, JIRA_WEBHOOK_SECRET, vendors.jira.comment_created_event(key, override), auth="token"
    )
    assert auto.status_code == 202 and auto.json()["override"] is True, auto.text
    needle = f"{handoff_id}/human:jira:{override['id']}"
    _wait_both(fakes, ops_thread, inv_thread, needle)
    assert (
        "Human override from @Alice Oncall on Jira"
        in _posted(fakes, ops_thread, inv_thread, needle)[0][0]["text"]
    )
    assert _wait_audit(broker, handoff_id, "humanOverride")["details"]["entryId"] == override["id"]

    # The broker's own comment is never read back.
    own = vendors.jira.add_human_comment(
        key, "Findings", account_id=JIRA_ACCOUNT, display_name="Handoff Broker"
    )
    echo = vendors.jira.send_webhook(url, JIRA_WEBHOOK_SECRET, vendors.jira.comment_created_event(key, own))
    assert echo.status_code == 200 and echo.json()["reason"] == "the broker's own entry"


def test_jira_bad_signature_or_token_is_401_and_changes_nothing(broker, vendors, fakes):
    start = len(broker.logs())
    key = _jira_issue(vendors)
    handoff_id, ops_thread, inv_thread = _investigation(broker, fakes, {"id": key, "platform": "jira"})
    comment = vendors.jira.add_human_comment(key, "stop: leave it")
    event = vendors.jira.comment_created_event(key, comment)
    url = _hook(broker, "jira")
    for response in (
        vendors.jira.send_webhook(url, "not-the-secret", event),
        vendors.jira.send_webhook(url, JIRA_WEBHOOK_SECRET, event, signature=""),
        vendors.jira.send_webhook(url, JIRA_WEBHOOK_SECRET, event, signature="sha256=" + "0" * 64),
        vendors.jira.send_webhook(url, "not-the-secret", event, auth="token"),
        vendors.jira.send_webhook(url, JIRA_WEBHOOK_SECRET, event, auth="token", signature=""),
    ):
        assert response.status_code == 401, response.text
        assert response.headers["content-type"].startswith("application/problem+json")
    time.sleep(1)
    assert _posted(fakes, ops_thread, inv_thread, "human:jira:") == ([], [])
    assert not [e for e in _audit(broker, handoff_id) if e["type"].startswith("human")]
    _wait_log(broker, "resource='webhooks/jira' status=401", since=start)
    assert vendors.jira.send_webhook(url, JIRA_WEBHOOK_SECRET, event).status_code == 202


def test_servicenow_work_note_by_business_rule(broker, vendors, fakes):
    sys_id = vendors.servicenow.add_record(f"INC{uuid.uuid4().int % 9000000 + 1000000}")
    handoff_id, ops_thread, inv_thread = _investigation(
        broker, fakes, {"id": sys_id, "platform": "servicenow"}
    )
    url = _hook(broker, "snow")
    entry = vendors.servicenow.add_human_entry(
        sys_id, "STOP: failover is running, do not restart the primary"
    )
    event = vendors.servicenow.journal_event(entry)

    for bad in ("", "not-the-secret"):
        refused = vendors.servicenow.send_webhook(url, SERVICENOW_WEBHOOK_SECRET, event, token=bad)
        assert refused.status_code == 401, refused.text
    assert not [e for e in _audit(broker, handoff_id) if e["type"].startswith("human")]

    response = vendors.servicenow.send_webhook(url, SERVICENOW_WEBHOOK_SECRET, event)
    assert response.status_code == 202, response.text
    assert response.json() == {"status": "queued", "investigations": 1, "override": True}
    again = vendors.servicenow.send_webhook(url, SERVICENOW_WEBHOOK_SECRET, event)
    assert again.status_code == 200 and again.json() == {"status": "duplicate"}
    needle = f"{handoff_id}/human:snow:{entry['sys_id']}"
    took = _wait_both(fakes, ops_thread, inv_thread, needle)
    print(f"\nServiceNow business rule to both threads: {took:.2f}s")
    ops, inv = _posted(fakes, ops_thread, inv_thread, needle)
    assert len(ops) == len(inv) == 1
    assert (
        ops[0]["text"]
        .splitlines()[0]
        .startswith(f"[Handoff {handoff_id}] Human override from @alice.oncall on ServiceNow, ")
    )

    # The broker's own work note, and a customer-visible comment (another field), are not read.
    for own in (
        vendors.servicenow.add_human_entry(sys_id, "Findings", user="handoff.bot"),
        vendors.servicenow.add_human_entry(sys_id, "We are on it", element="comments"),
    ):
        answer = vendors.servicenow.send_webhook(
            url, SERVICENOW_WEBHOOK_SECRET, vendors.servicenow.journal_event(own)
        )
        assert answer.status_code == 200 and answer.json()["status"] == "ignored", answer.text

    # Closed: an entry on the handed-back investigation is logged and ignored.
    handback = broker.client.post(f"/api/handoffs/{handoff_id}/handback", json=handback_body(MEMORY_AGENT))
    assert handback.status_code == 202
    broker.wait_status(handoff_id, "handedBack", timeout=20)
    late = vendors.servicenow.add_human_entry(sys_id, "Any news?")
    answer = vendors.servicenow.send_webhook(
        url, SERVICENOW_WEBHOOK_SECRET, vendors.servicenow.journal_event(late)
    )
    assert answer.status_code == 200 and answer.json()["reason"] == "no active investigation on this record"
    _wait_log(
        broker, f"human entry {late['sys_id']} on snow {sys_id} matches no active investigation; ignored"
    )


# ---------------------------------------------------------------- without webhooks: polling


def _wait_log(broker: Any, text: str, timeout: float = 15, since: int = 0) -> None:
    """Wait for ``text`` in the broker's log after offset ``since`` (where the test's own lines start)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if text in broker.logs()[since:]:
            return
        time.sleep(0.1)
    raise AssertionError(f"{text!r} not in the broker's log")


def test_polling_reads_a_github_comment_without_a_webhook(broker, vendors, fakes):
    number = vendors.github.add_issue(POLLED_REPO, f"Checkout outage {uuid.uuid4().hex[:6]}")
    incident = {"id": f"{POLLED_REPO}#{number}", "platform": "github"}
    handoff_id, ops_thread, tri_thread = _investigation(broker, fakes, incident, target=POLL_AGENT)
    own = vendors.github.add_human_comment(POLLED_REPO, number, "Handed off to triage", login="handoff-bot")
    marked = vendors.github.add_human_comment(
        POLLED_REPO,
        number,
        f"Findings\n\n<!-- handoff-memory: {handoff_id}/delivered:0/gh -->",
        login="handoff-bot",
    )
    written = time.monotonic()
    comment = vendors.github.add_human_comment(
        POLLED_REPO, number, f"Re {handoff_id}: customer impact is EU only", login="alice"
    )
    needle = f"{handoff_id}/human:gh-poll:{comment['id']}"
    _wait_both(fakes, ops_thread, tri_thread, needle, timeout=90, target=POLL_AGENT)
    took = time.monotonic() - written
    print(f"\nGitHub comment polled into both threads: {took:.2f}s")  # a figure, not a check
    override = vendors.github.add_human_comment(POLLED_REPO, number, "override: roll back now", login="alice")
    needle_override = f"{handoff_id}/human:gh-poll:{override['id']}"
    _wait_both(fakes, ops_thread, tri_thread, needle_override, timeout=90, target=POLL_AGENT)

    ops, tri = _posted(fakes, ops_thread, tri_thread, needle, POLL_AGENT)
    assert len(ops) == len(tri) == 1 and "> Re " in ops[0]["text"]
    ops, _ = _posted(fakes, ops_thread, tri_thread, needle_override, POLL_AGENT)
    assert "Human override from @alice on GitHub" in ops[0]["text"]
    assert _wait_audit(broker, handoff_id, "humanOverride")["details"]["entryId"] == str(override["id"])
    # No echo: the broker's own comments were polled too, and never posted.
    for echo in (own, marked):
        assert _posted(fakes, ops_thread, tri_thread, f"human:gh-poll:{echo['id']}", POLL_AGENT) == ([], [])
    assert len([e for e in _audit(broker, handoff_id) if e["type"] == "humanNote"]) == 1

    # Closed: the record is no longer read, and what is written there afterwards reaches no one.
    handback = broker.client.post(f"/api/handoffs/{handoff_id}/handback", json=handback_body(POLL_AGENT))
    assert handback.status_code == 202
    broker.wait_status(handoff_id, "handedBack", timeout=20)
    _wait_log(broker, f"no longer polling gh-poll {POLLED_REPO}#{number} for closed {handoff_id}")
    late = vendors.github.add_human_comment(POLLED_REPO, number, f"{handoff_id}: any news?", login="bob")
    time.sleep(2.5)
    assert _posted(fakes, ops_thread, tri_thread, f"human:gh-poll:{late['id']}", POLL_AGENT) == ([], [])


def test_polling_reads_a_pagerduty_note_without_a_webhook(broker, vendors, fakes):
    incident_id = "P" + uuid.uuid4().hex[:6].upper()
    vendors.pagerduty.add_incident(incident_id)
    handoff_id, ops_thread, tri_thread = _investigation(
        broker, fakes, {"id": incident_id, "platform": "pagerduty"}, target=POLL_AGENT
    )
    written = time.monotonic()
    note = vendors.pagerduty.add_human_note(
        incident_id, "STOP: do not restart the primary, failover is running"
    )
    needle = f"{handoff_id}/human:pd-poll:{note['id']}"
    _wait_both(fakes, ops_thread, tri_thread, needle, timeout=90, target=POLL_AGENT)
    print(f"\nPagerDuty note polled into both threads: {time.monotonic() - written:.2f}s")
    ops, tri = _posted(fakes, ops_thread, tri_thread, needle, POLL_AGENT)
    assert len(ops) == len(tri) == 1
    assert (
        ops[0]["text"]
        .splitlines()[0]
        .startswith(f"[Handoff {handoff_id}] Human override from @Alice Oncall on PagerDuty, ")
    )
    time.sleep(2)  # more polls: still once
    assert len(_posted(fakes, ops_thread, tri_thread, needle, POLL_AGENT)[0]) == 1
    handback = broker.client.post(f"/api/handoffs/{handoff_id}/handback", json=handback_body(POLL_AGENT))
    assert handback.status_code == 202
    broker.wait_status(handoff_id, "handedBack", timeout=20)
    _wait_log(broker, f"no longer polling pd-poll {incident_id} for closed {handoff_id}")


# ---------------------------------------------------------------- Seen before


def test_seen_before_lists_what_people_wrote_overrides_first(broker, vendors, fakes):
    site = (
        f"/subscriptions/00000000-0000-0000-0000-000000000000/resourceGroups/rg-{uuid.uuid4().hex[:8]}"
        "/providers/Microsoft.Web/sites/checkout-api"
    )
    number, incident = _github_issue(vendors)
    earlier, _, _ = _investigation(broker, fakes, incident, resources=[site])
    url = _hook(broker, "gh")
    for text in ("The EU region is affected", "stop: do not restart the primary", "Pool resized at 02:00"):
        comment = vendors.github.add_human_comment(REPO, number, text, login="alice")
        event = vendors.github.issue_comment_event(REPO, number, comment)
        assert (
            vendors.github.send_webhook(url, GITHUB_WEBHOOK_SECRET, "issue_comment", event).status_code == 202
        )
    handback = broker.client.post(f"/api/handoffs/{earlier}/handback", json=handback_body(MEMORY_AGENT))
    assert handback.status_code == 202
    broker.wait_status(earlier, "handedBack", timeout=20)

    # The next investigation of the same resource (by agents who may read the earlier one).
    _, _, thread = _investigation(broker, fakes, None, target=POLL_AGENT, resources=[site])
    start = fakes.agents[POLL_AGENT].messages(thread)[0]["text"]
    section = start.split("## Seen before", 1)[1].split("\n## ", 1)[0]
    assert earlier in section
    notes = [line.strip() for line in section.splitlines() if line.strip().startswith("- Human")]
    assert notes[0].startswith("- Human override by @alice on gh, ")
    assert notes[0].endswith(": stop: do not restart the primary")
    assert [line.rsplit(": ", 1)[1] for line in notes[1:]] == [
        "Pool resized at 02:00",
        "The EU region is affected",
    ]
