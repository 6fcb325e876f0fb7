"""Storage down: health says 503 within 2 s, requests get 503 problems, and all is well after it returns."""

from __future__ import annotations

import time

import pytest

from devserver.azurite import start_azurite
from tests.e2e.helpers import handoff_body
from tests.support.broker import BrokerProcess


@pytest.fixture
def own_storage_broker(fakes, registry_config, tmp_path):
    import json

    azurite = start_azurite()
    config = tmp_path / "handoff.config.json"
    config.write_text(json.dumps(registry_config))
    env = {**fakes.env(), "HANDOFF_CONFIG": str(config), "HANDOFF_STORAGE": azurite.connection_string,
           "AzureWebJobsStorage": azurite.connection_string}  # fmt: skip
    broker = BrokerProcess(env, tmp_path / "host.log")
    try:
        broker.wait_healthy()
        yield broker, azurite
    finally:
        broker.stop()
        azurite.stop()


def test_health_and_requests_answer_503_while_storage_is_down(own_storage_broker):
    broker, azurite = own_storage_broker
    azurite.suspend()
    try:
        started = time.monotonic()
        health = broker.client.get("/api/health")
        assert time.monotonic() - started < 2.5
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
