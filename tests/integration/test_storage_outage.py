"""Storage down: health says 503 (within about 2 s: see bench/health_outage.py), requests get 503 problems,
and all is well after storage returns."""

from __future__ import annotations

from tests.e2e.helpers import handoff_body


def test_health_and_requests_answer_503_while_storage_is_down(own_storage_broker):
    broker, azurite = own_storage_broker
    azurite.suspend()
    try:
        # The probe uses 2 s timeouts and no retries; the figure is in bench/, not asserted here.
        health = broker.client.get("/api/health")
        assert health.status_code == 503 and health.json()["storage"] == "unreachable"
        refused = broker.client.post("/api/handoffs", json=handoff_body(None))
        assert refused.status_code == 503
        assert refused.headers["content-type"].startswith("application/problem+json")
        assert "Retry-After" in refused.headers
    finally:
        azurite.resume()
    broker.wait_healthy(timeout=20)
    accepted = broker.client.post("/api/handoffs", json=handoff_body(None))
    assert accepted.status_code == 202
    broker.wait_status(accepted.json()["id"], "delivered", timeout=20)
