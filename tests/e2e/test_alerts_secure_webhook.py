"""Secure webhook: with an audience and tenant configured, /api/alerts requires Azure Monitor's Entra token
(checked against a simulated Entra authority's signing keys)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from devserver.fakes.entra import FakeEntra, new_rsa_key
from tests.e2e.alert_payloads import envelope
from tests.support.broker import BrokerProcess, broker_settings

AUDIENCE = "api://handoff-broker-test"


@pytest.fixture(scope="module")
def entra() -> Iterator[FakeEntra]:
    with FakeEntra() as server:
        yield server


@pytest.fixture(scope="module")
def secure_broker(azurite, fakes, registry_config, entra, tmp_path_factory) -> Iterator[BrokerProcess]:
    """A second broker on the same storage whose alerts endpoint requires secure-webhook tokens."""
    workdir = tmp_path_factory.mktemp("secure-broker")
    env = broker_settings(
        fakes,
        registry_config,
        azurite.connection_string,
        workdir,
        HANDOFF_ARM_ENDPOINT=fakes.arm_url,
        HANDOFF_ALERTS_AUDIENCE=f"{AUDIENCE},00000000-1111-2222-3333-444444444444",
        HANDOFF_ALERTS_TENANT_ID=entra.tenant_id,
        HANDOFF_ALERTS_AUTHORITY=entra.authority,
    )
    with BrokerProcess.running(env, workdir / "host.log") as process:
        yield process


def send(broker: BrokerProcess, token: str | None):
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    return broker.client.post("/api/alerts", json=envelope("metric-static-fired", "samples"), headers=headers)


def test_good_token_is_accepted(secure_broker, entra):
    assert send(secure_broker, entra.secure_webhook_token(AUDIENCE)).status_code == 202


def test_v2_token_with_client_id_audience_and_azp_is_accepted(secure_broker, entra):
    token = entra.secure_webhook_token("00000000-1111-2222-3333-444444444444", version="2.0")
    assert send(secure_broker, token).status_code == 202


@pytest.mark.parametrize(
    ("case", "check"),
    [
        ("missing", "bearer token is required"),
        ("wrongAudience", "audience"),
        ("missingRole", "ActionGroupsSecureWebhook"),
        ("wrongAppId", "appid/azp"),
        ("otherTenant", "tenant"),
        ("foreignKey", "not signed by a key of the configured tenant"),
        ("expired", "expired"),
    ],
)
def test_bad_tokens_get_401_naming_the_check(secure_broker, entra, case, check):
    tokens = {
        "missing": None,
        "wrongAudience": entra.secure_webhook_token("api://someone-else"),
        "missingRole": entra.secure_webhook_token(AUDIENCE, roles=()),
        "wrongAppId": entra.secure_webhook_token(AUDIENCE, appid="11112222-bbbb-3333-cccc-4444dddd5555"),
        "otherTenant": entra.secure_webhook_token(AUDIENCE, tid="aaaabbbb-0000-cccc-1111-dddd2222eeee"),
        "foreignKey": entra.secure_webhook_token(AUDIENCE, key=new_rsa_key(), kid="another-key"),
        "expired": entra.secure_webhook_token(AUDIENCE, lifetime=-3600),
    }
    response = send(secure_broker, tokens[case])
    assert response.status_code == 401, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    assert check in response.json()["detail"]


def test_a_token_signed_with_another_key_of_the_same_id_fails_the_signature(secure_broker, entra):
    token = entra.secure_webhook_token(AUDIENCE, key=new_rsa_key())
    # same kid as the tenant's key, different private key
    response = send(secure_broker, token)
    assert response.status_code == 401
    assert "signature" in response.json()["detail"]


def test_openapi_names_the_alerts_endpoint_security_actually_applied(broker, secure_broker):
    plain = broker.client.get("/api/openapi.json").json()["paths"]["/api/alerts"]["post"]
    secured = secure_broker.client.get("/api/openapi.json").json()["paths"]["/api/alerts"]["post"]
    assert plain["security"] == [{"functionKey": []}]
    assert secured["security"] == [{"functionKey": [], "secureWebhook": []}]
