"""An alert route's shared-memory backends are written for the alert's handoff, including when the
alert resolves, and the alert rule is searchable in the history."""

from __future__ import annotations

import time

from tests.e2e.alert_payloads import envelope, load, unique_alert_id
from tests.e2e.helpers import handback_body
from tests.support.vendors import JIRA_ISSUE


def _comments_with(vendors, needle: str, timeout: float = 30) -> list[dict]:
    deadline = time.monotonic() + timeout
    found: list[dict] = []
    while time.monotonic() < deadline:
        found = [c for c in vendors.jira.comments(JIRA_ISSUE) if needle in str(c)]
        if found:
            return found
        time.sleep(0.1)
    return found


def test_route_backends_write_on_resolve_and_hand_back(broker, clean_fakes, vendors):
    alert_id = unique_alert_id()
    fired = broker.client.post("/api/alerts", json=envelope("metric-static-fired", "memory", alert_id))
    assert fired.status_code == 202, fired.text
    handoff_id = fired.json()["routed"][0]["handoffId"]
    broker.wait_status(handoff_id, "delivered", timeout=20)

    resolved = broker.client.post(
        "/api/alerts", json=envelope("metric-static-fired", "memory", alert_id, condition="Resolved")
    )
    assert resolved.status_code == 202, resolved.text
    on_resolve = _comments_with(vendors, f"handoff-memory: {handoff_id}/alertResolved")
    assert len(on_resolve) == 1

    answer = broker.client.post(f"/api/handoffs/{handoff_id}/handback", json=handback_body())
    assert answer.status_code == 202
    broker.wait_status(handoff_id, "handedBack")
    assert len(_comments_with(vendors, f"handoff-memory: {handoff_id}/handedBack")) == 1

    rule = load("metric-static-fired")["data"]["essentials"]["alertRule"]
    history = broker.client.get("/api/history", params={"alertRule": rule, "top": 50}).json()["items"]
    assert handoff_id in [item["handoffId"] for item in history]
