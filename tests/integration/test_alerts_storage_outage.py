"""Storage down: /api/alerts answers 503 (so Azure Monitor retries), and the retried alert then lands once."""

from __future__ import annotations

from tests.e2e.alert_payloads import envelope


def test_alerts_answer_503_while_storage_is_down_and_the_retry_lands(own_storage_broker):
    broker, azurite = own_storage_broker
    body = envelope("log-search-v2-fired", "samples")
    azurite.suspend()
    try:
        refused = broker.client.post("/api/alerts", json=body)
        assert refused.status_code == 503
        assert refused.headers["content-type"].startswith("application/problem+json")
        assert "Retry-After" in refused.headers
    finally:
        azurite.resume()
    broker.wait_healthy(timeout=20)
    accepted = broker.client.post("/api/alerts", json=body)
    assert accepted.status_code == 202
    [routed] = accepted.json()["routed"]
    assert routed["status"] == "created"
    broker.wait_status(routed["handoffId"], "delivered", timeout=20)
