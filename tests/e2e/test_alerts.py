"""Azure Monitor alerts through the running broker: every documented sample, resolve, dedupe, storms."""

from __future__ import annotations

import copy
import random
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor

import pytest

from tests.e2e.alert_payloads import EXPECTED, envelope, sample_names, unique_alert_id
from tests.e2e.helpers import handback_body, messages_mentioning

FIRED = [name for name in sample_names() if "resolved" not in name]
RESOLVED = [name for name in sample_names() if "resolved" in name]
ALERT_EVENTS = ("alertFired", "alertRefired", "alertJoinedStorm")


def post(broker, body) -> tuple[int, dict]:
    response = broker.client.post("/api/alerts", json=body)
    return response.status_code, response.json()


def thread_of(broker, handoff_id: str) -> str:
    return broker.wait_status(handoff_id, "delivered", timeout=20)["target"]["threadId"]


def wait_messages(agent, thread_id: str, needle: str, count: int = 1, timeout: float = 15) -> list[dict]:
    deadline = time.monotonic() + timeout
    while True:
        found = messages_mentioning(agent, thread_id, needle)
        if len(found) >= count or time.monotonic() > deadline:
            return found
        time.sleep(0.05)


def test_every_sample_has_an_expectation():
    assert sorted(EXPECTED) == sorted(FIRED)
    assert RESOLVED == ["metric-static-resolved", "metric-static-resolved-custom-properties"]


def test_every_fired_sample_becomes_a_handoff_with_its_evidence(broker, clean_fakes):
    bodies = {name: envelope(name, "samples") for name in FIRED}
    with ThreadPoolExecutor(8) as pool:
        answers = dict(zip(bodies, pool.map(lambda b: post(broker, b), bodies.values()), strict=True))
    checkout = clean_fakes.agents["checkout"]
    for name, (status, receipt) in answers.items():
        assert status == 202, (name, receipt)
        [routed] = receipt["routed"]
        assert routed["status"] == "created"
        assert (routed["route"], routed["target"]) == ("alert-samples", "checkout")
        view = broker.wait_status(routed["handoffId"], "delivered", timeout=20)
        assert view["source"] == {"agent": "azure-monitor"}
        essentials = bodies[name]["data"]["essentials"]
        assert view["context"]["incident"]["id"] == essentials["alertId"]
        assert view["context"]["incident"]["url"].startswith("https://portal.azure.com/")
        thread = checkout.thread(view["target"]["threadId"])
        text = thread["startMessage"]["text"]
        assert "**From:** Azure Monitor" in text, name
        for expected in EXPECTED[name]:
            assert expected in text, f"{name}: {expected!r} missing from the start message"
        if essentials.get("severity"):
            assert f"**Severity:** {essentials['severity']}" in text
        if essentials.get("alertRule"):
            assert view["context"]["title"].startswith(essentials["alertRule"])
        # no cross-link: there is no source thread
        assert view["source"].get("threadId") is None
        assert "crossLinked" not in broker.audit_types(routed["handoffId"])


def test_a_system_handoff_takes_a_hand_back_without_a_source_thread(broker, clean_fakes):
    _, receipt = post(broker, envelope("metric-static-fired", "samples"))
    handoff_id = receipt["routed"][0]["handoffId"]
    thread_id = thread_of(broker, handoff_id)
    answer = broker.client.post(
        f"/api/handoffs/{handoff_id}/handback", json=handback_body(thread_id=thread_id)
    )
    assert answer.status_code == 202
    view = broker.wait_status(handoff_id, "handedBack")
    assert view["handbacks"][0]["delivery"] == "noSourceThread"


def test_an_alert_handoff_is_listed_by_its_alert_rule(broker, clean_fakes):
    body = envelope("metric-static-fired", "samples")
    rule = f"Listed rule {random.randrange(10**9)}"
    body["data"]["essentials"]["alertRule"] = rule
    body["data"]["essentials"]["alertId"] = unique_alert_id()
    _, receipt = post(broker, body)
    handoff_id = receipt["routed"][0]["handoffId"]
    broker.wait_status(handoff_id, "delivered", timeout=20)

    page = broker.client.get("/api/handoffs", params={"alertRule": rule.upper(), "source": "azure-monitor"})

    assert page.status_code == 200, page.text
    [item] = page.json()["items"]
    assert (item["id"], item["alertRule"], item["source"]) == (handoff_id, rule, "azure-monitor")
    assert item["status"] == "delivered" and page.json()["continuationToken"] is None


@pytest.mark.parametrize("name", RESOLVED)
def test_resolved_sample_after_fired_posts_one_resolution(broker, clean_fakes, name):
    alert_id = unique_alert_id()
    status, fired = post(broker, envelope(name, "samples", alert_id, condition="Fired"))
    assert status == 202
    handoff_id = fired["routed"][0]["handoffId"]
    thread_id = thread_of(broker, handoff_id)
    status, resolved = post(broker, envelope(name, "samples", alert_id))
    assert status == 202
    assert resolved["routed"][0]["status"] == "resolved"
    assert resolved["routed"][0]["handoffId"] == handoff_id
    checkout = clean_fakes.agents["checkout"]
    needle = "resolved at `2019-03-22T14:03:16.2246313Z`"
    assert len(wait_messages(checkout, thread_id, needle)) == 1
    # a duplicate Resolved is recorded but posts nothing more
    status, again = post(broker, envelope(name, "samples", alert_id))
    assert (status, again["routed"][0]["status"]) == (202, "alreadyResolved")
    types = broker.audit_types(handoff_id)
    assert types.count("alertResolved") == 1
    assert "alertResolvedAgain" in types
    assert len(messages_mentioning(checkout, thread_id, needle)) == 1
    # the investigation itself stays open
    assert broker.client.get(f"/api/handoffs/{handoff_id}").json()["status"] == "delivered"


def test_resolved_for_an_alert_never_seen_is_recorded_and_opens_nothing(broker, clean_fakes):
    status, body = post(broker, envelope("metric-static-resolved", "samples", unique_alert_id()))
    assert status == 200
    assert body["routed"] == []
    assert "never seen firing" in body["detail"]


def test_an_alert_no_route_matches_is_answered_200(broker, clean_fakes):
    status, body = post(broker, envelope("metric-static-fired", "nowhere"))
    assert (status, body["routed"]) == (200, [])


def test_repeat_fired_counts_and_posts_one_fired_again_note(broker, clean_fakes):
    body = envelope("metric-static-fired", "samples")
    answers = [post(broker, body) for _ in range(3)]
    assert [a[1]["routed"][0]["status"] for a in answers] == ["created", "updated", "updated"]
    assert [a[1]["routed"][0]["firedCount"] for a in answers] == [1, 2, 3]
    handoff_id = answers[0][1]["routed"][0]["handoffId"]
    assert {a[1]["routed"][0]["handoffId"] for a in answers} == {handoff_id}
    thread_id = thread_of(broker, handoff_id)
    checkout = clean_fakes.agents["checkout"]
    notes = wait_messages(checkout, thread_id, "fired again")
    assert len(notes) == 1
    # The next note may come only after the interval (15 minutes by default): more repeats post nothing.
    post(broker, body)
    deadline = time.monotonic() + 10
    while "alertNotePosted" not in broker.audit_types(handoff_id) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert len(messages_mentioning(checkout, thread_id, "fired again")) == 1
    assert len(messages_mentioning(checkout, thread_id, "[Handoff")) == 2  # start message + one note


def test_concurrent_duplicates_make_one_handoff_and_one_thread(broker, clean_fakes):
    alert_id = unique_alert_id()
    body = envelope("metric-static-fired", "samples", alert_id)
    with ThreadPoolExecutor(32) as pool:
        answers = list(pool.map(lambda _: post(broker, body), range(200)))
    assert {status for status, _ in answers} == {202}
    handoff_ids = {receipt["routed"][0]["handoffId"] for _, receipt in answers}
    assert len(handoff_ids) == 1
    [handoff_id] = handoff_ids
    assert sorted(receipt["routed"][0]["firedCount"] for _, receipt in answers) == list(range(1, 201))
    thread_id = thread_of(broker, handoff_id)
    checkout = clean_fakes.agents["checkout"]
    assert [t["id"] for t in checkout.threads() if handoff_id in t["startMessage"]["text"]] == [thread_id]
    types = Counter(broker.audit_types(handoff_id))
    assert (types["accepted"], types["alertFired"], types["alertRefired"]) == (1, 1, 199)
    resolved = copy.deepcopy(body)
    resolved["data"]["essentials"].update(
        monitorCondition="Resolved", resolvedDateTime="2026-01-05T11:00:00Z"
    )
    status, answer = post(broker, resolved)
    assert (status, answer["routed"][0]["status"]) == (202, "resolved")
    assert len(wait_messages(checkout, thread_id, "resolved at `2026-01-05T11:00:00Z`")) == 1


def test_alert_storm_joins_one_storm_handoff_and_accounts_for_every_alert(broker, clean_fakes):
    threshold = 5
    ids = [unique_alert_id() for _ in range(50)]
    order = [ids[i % 50] for i in range(1000)]
    random.Random(7).shuffle(order)
    base = envelope("metric-static-fired", "storm")

    def fire(alert_id: str) -> tuple[int, dict]:
        body = copy.deepcopy(base)
        body["data"]["essentials"]["alertId"] = alert_id
        return post(broker, body)

    with ThreadPoolExecutor(24) as pool:
        answers = list(pool.map(fire, order))
    assert {status for status, _ in answers} == {202}
    statuses = Counter(receipt["routed"][0]["status"] for _, receipt in answers)
    assert statuses["created"] == threshold
    assert statuses["stormStarted"] == 1
    assert statuses["stormJoined"] == 50 - threshold - 1
    handoff_ids = {receipt["routed"][0]["handoffId"] for _, receipt in answers}
    assert len(handoff_ids) <= threshold + 1
    # one thread per handoff on ops, nothing more
    for handoff_id in handoff_ids:
        thread_of(broker, handoff_id)
    ops = clean_fakes.agents["ops"]
    threads = [t for t in ops.threads() if any(h in t["startMessage"]["text"] for h in handoff_ids)]
    assert len(threads) <= threshold + 1
    # every one of the 1,000 notifications is in exactly one handoff's audit
    counted: Counter[str] = Counter()
    for handoff_id in handoff_ids:
        events = broker.client.get(f"/api/handoffs/{handoff_id}/audit").json()["events"]
        counted.update(e["details"]["alertId"] for e in events if e["type"] in ALERT_EVENTS)
    assert sum(counted.values()) == 1000
    assert counted == Counter(order)
    # the storm handoff's thread gets a "more related alerts" update instead of more threads
    [storm_id] = {
        r["routed"][0]["handoffId"] for _, r in answers if r["routed"][0]["status"] == "stormStarted"
    }
    storm_view = broker.client.get(f"/api/handoffs/{storm_id}").json()
    assert storm_view["context"]["title"].startswith("Alert storm")
    assert storm_view["intent"] == "mitigate"
    assert wait_messages(ops, storm_view["target"]["threadId"], "more related alerts")


def test_not_common_schema_is_400_saying_to_enable_it(broker):
    legacy = {"schemaId": "Microsoft.Insights/activityLogs", "data": {"status": "Activated", "context": {}}}
    for body in (legacy, {"status": "Activated", "context": {"name": "cpu"}}):
        response = broker.client.post("/api/alerts", json=body)
        assert response.status_code == 400
        assert response.headers["content-type"].startswith("application/problem+json")
        assert "enable the common alert schema on the action group" in response.json()["detail"]
    not_json = broker.client.post(
        "/api/alerts", content=b"{not json", headers={"content-type": "application/json"}
    )
    assert not_json.status_code == 400


def variations() -> list[dict]:
    """Payloads that bend the samples: odd types, nulls, junk targets, huge fields, unknown services."""
    out = []
    for name in (
        "metric-static-fired",
        "log-search-v1-metric-measurement-fired",
        "budget-sample-fired",
        "activity-log-service-health-fired",
        "prometheus.alert-context",
    ):
        for change in range(6):
            body = envelope(name, "samples")
            data, essentials = body["data"], body["data"]["essentials"]
            if change == 0:
                data["alertContext"] = None
            elif change == 1:
                essentials.update(
                    alertTargetIDs=["junk", "", 5, "/subscriptions/" + "x" * 2000], severity="Sev9"
                )
            elif change == 2:
                essentials.update(description="d" * 100_000, alertRule="r" * 1000, monitorCondition="fired")
            elif change == 3:
                essentials.update(
                    monitoringService="Brand New Service", signalType=None, alertTargetIDs="one"
                )
            elif change == 4:
                data["alertContext"] = {
                    "condition": {"allOf": [{"dimensions": "x", "failingPeriods": 3}]},
                    "SearchResults": {"tables": [{"columns": [], "rows": [[1, 2]]}]},
                    "conditionType": "LogQueryCriteria",
                    "properties": {"impactedServices": "[oops"},
                }
            else:
                for key in (
                    "alertRule",
                    "severity",
                    "signalType",
                    "firedDateTime",
                    "description",
                    "originAlertId",
                ):
                    essentials.pop(key, None)
            out.append(body)
    return out


def test_variations_of_the_samples_never_get_a_5xx(broker, clean_fakes):
    with ThreadPoolExecutor(8) as pool:
        answers = list(pool.map(lambda b: post(broker, b), variations()))
    assert [status for status, _ in answers if status not in (200, 202)] == []
    for status, receipt in answers:
        if status == 202:
            handoff_id = receipt["routed"][0]["handoffId"]
            assert broker.client.get(f"/api/handoffs/{handoff_id}").status_code == 200
