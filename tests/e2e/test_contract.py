"""The handoff contract through the running broker: its schemas served as checked in, and what the REST API
answers follows them (docs/contract.md)."""

from __future__ import annotations

import uuid

import pytest

from handoff.domain.contract import BASE_URI, MEDIA_TYPE, SCHEMA_NAMES
from handoff.entrypoints.contract_schemas import SCHEMA_DIR
from tests.e2e.helpers import contract_errors, handback_body, handoff_body

PREFIX = "/api/schemas/handoff-context/v1"


@pytest.mark.parametrize("name", sorted(SCHEMA_NAMES))
def test_each_schema_is_served_byte_for_byte_without_a_caller(broker, name):
    response = broker.client.get(f"{PREFIX}/{name}.json")

    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith(MEDIA_TYPE)
    assert "public" in response.headers["cache-control"]
    assert response.content == (SCHEMA_DIR / f"{name}.json").read_bytes()
    assert response.json()["$id"] == f"{BASE_URI}{name}.json"


@pytest.mark.parametrize(
    "name",
    ["nothing", "HANDOFF-REQUEST", "handoff-request.json", "..", "%2e%2e", "README", "examples", "generate"],
)
def test_a_name_outside_the_contract_is_a_404_problem(broker, name):
    response = broker.client.get(f"{PREFIX}/{name}.json")

    assert response.status_code == 404
    assert response.headers["content-type"].startswith("application/problem+json")
    assert response.json()["status"] == 404


@pytest.mark.parametrize(
    "path",
    [
        f"{PREFIX}/..%2F..%2F..%2Fhost.json",
        f"{PREFIX}/examples%2Fhandoff-request.json",
        f"{PREFIX}/%2Fetc%2Fpasswd.json",
        "/api/schemas/handoff-context/v2/handoff-request.json",
    ],
)
def test_no_path_reaches_another_file(broker, path):
    response = broker.client.get(path)

    assert response.status_code == 404
    assert "extensionBundle" not in response.text and "root:" not in response.text
    assert "$schema" not in response.text


def test_a_handoff_that_names_the_contract_is_the_same_handoff_as_one_that_does_not(broker, clean_fakes):
    key = {"Idempotency-Key": f"contract-{uuid.uuid4()}"}
    plain = handoff_body(clean_fakes.agents["ops"].create_thread("Ops: contract")["id"])
    marked = {**plain, "schemaId": "handoffContext", "schemaVersion": "1.0"}

    first = broker.client.post("/api/handoffs", json=marked, headers=key)
    replay = broker.client.post("/api/handoffs", json=plain, headers=key)
    newer = broker.client.post("/api/handoffs", json={**plain, "schemaVersion": "2.0"}, headers=key)

    assert first.status_code == 202, first.text
    assert replay.status_code == 200 and replay.json()["id"] == first.json()["id"]
    assert "schemaId" not in first.json() and "schemaVersion" not in first.json()
    assert newer.status_code == 422 and newer.json()["errors"][0]["field"] == "/schemaVersion"
    assert contract_errors("handoff-status", first.json()) == []


def test_what_the_broker_answers_follows_the_contract(broker, clean_fakes):
    source_thread = clean_fakes.agents["ops"].create_thread("Ops: contract answers")["id"]
    handoff_id = broker.client.post("/api/handoffs", json=handoff_body(source_thread)).json()["id"]
    delivered = broker.wait_status(handoff_id, "delivered")
    back = broker.client.post(
        f"/api/handoffs/{handoff_id}/handback",
        json={**handback_body(thread_id=delivered["target"]["threadId"]), "schemaId": "handoffContext"},
    )
    assert back.status_code == 202, back.text
    done = broker.wait_status(handoff_id, "handedBack")
    events = broker.client.get(f"/api/handoffs/{handoff_id}/audit").json()["events"]

    assert contract_errors("handoff-status", delivered) == []
    assert contract_errors("handoff-status", done) == []
    assert [error for event in events for error in contract_errors("audit-event", event)] == []
    assert {"accepted", "delivered", "handBackReceived", "handedBack"} <= {event["type"] for event in events}


def test_openapi_lists_the_schemas_as_public(broker):
    document = broker.client.get("/api/openapi.json").json()

    operation = document["paths"][f"{PREFIX}/{{name}}.json"]["get"]
    assert operation["security"] == []
    assert operation["parameters"][0]["schema"]["enum"] == sorted(SCHEMA_NAMES)
    assert set(operation["responses"]) == {"200", "404"}
