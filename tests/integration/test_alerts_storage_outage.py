"""Storage down: /api/alerts answers 503 (so Azure Monitor retries), and the retried alert then lands once."""

from __future__ import annotations

import json

import pytest

from devserver.azurite import start_azurite
from tests.e2e.alert_payloads import envelope
from tests.support.broker import BrokerProcess


@pytest.fixture
def own_storage_broker(fakes, registry_config, tmp_path):
    azurite = start_azurite()
    config = tmp_path / "handoff.config.json"
    config.write_text(json.dumps(registry_config))
    env = {
        **fakes.env(),
        "HANDOFF_CONFIG": str(config),
        "HANDOFF_STORAGE": azurite.connection_string,
        "AzureWebJobsStorage": azurite.connection_string,
    }
    broker = BrokerProcess(env, tmp_path / "host.log")
    try:
        broker.wait_healthy()
        yield broker, azurite
    finally:
        broker.stop()
        azurite.stop()


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
