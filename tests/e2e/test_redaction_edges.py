"""Edges where redaction meets validation, and time filters that mix offsets: never a 500."""

from __future__ import annotations

import json

import pytest

from tests.e2e.alert_payloads import SUB, envelope
from tests.e2e.helpers import handoff_body

SLACK_PATH = "hooks.slack.com/services/T000000000000000000000/BBBB"
HOOKED = f"/subscriptions/{SUB}/resourceGroups/rg/providers/ns/{SLACK_PATH}"
PLAIN = f"/subscriptions/{SUB}/resourceGroups/rg/providers/Microsoft.Web/sites/checkout-api"


@pytest.mark.attack("redaction")
def test_a_resource_id_a_secret_was_cut_out_of_is_dropped_not_a_500(broker, clean_fakes):
    body = handoff_body(None)
    body["context"]["resources"] = [HOOKED, PLAIN]

    response = broker.client.post("/api/handoffs", json=body)

    assert response.status_code == 202, response.text
    view = response.json()
    assert view["context"]["resources"] == [PLAIN]
    assert "T000000000000000000000" not in response.text
    audit = broker.client.get(f"/api/handoffs/{view['id']}/audit").json()["events"]
    assert audit[0]["details"]["redactions"] == {"slack_webhook": 1}


@pytest.mark.attack("redaction")
def test_an_alert_whose_target_carries_a_secret_is_still_a_handoff(broker, clean_fakes):
    alert = envelope("metric-static-fired", "samples")
    alert["data"]["essentials"]["alertTargetIDs"] = [HOOKED]

    first = broker.client.post("/api/alerts", json=alert)
    again = broker.client.post("/api/alerts", json=alert)  # Azure Monitor's retry

    assert first.status_code == 202, first.text
    assert again.status_code == 202, again.text
    handoff_id = first.json()["routed"][0]["handoffId"]
    view = broker.wait_status(handoff_id, "delivered", timeout=20)
    assert "T000000000000000000000" not in json.dumps(view)


def test_history_times_with_and_without_an_offset_compare(broker):
    response = broker.client.get(
        "/api/history", params={"since": "2024-01-01T00:00:00", "until": "2024-01-02T00:00:00Z"}
    )
    reversed_ = broker.client.get(
        "/api/history", params={"since": "2024-01-02T00:00:00Z", "until": "2024-01-01T00:00:00"}
    )

    assert response.status_code == 200, response.text
    assert reversed_.status_code == 422 and reversed_.json()["errors"][0]["field"] == "since"
