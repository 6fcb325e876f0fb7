"""The audit is tamper-evident and paged: rows edited, deleted, reordered or inserted directly in storage
are reported by ``GET /api/handoffs/{id}/audit/verify`` with the first bad sequence number."""

from __future__ import annotations

import itertools
import json
from collections.abc import Callable, Iterator

import pytest
from azure.data.tables import TableClient, UpdateMode

from handoff.adapters.azure_storage.layout import AUDIT_END, AUDIT_PREFIX
from handoff.settings import HANDOFF_TABLE
from tests.e2e.helpers import handback_body, handoff_body

Tamper = Callable[[TableClient, str, list[dict]], int]


@pytest.fixture(scope="module")
def audit_table(azurite) -> Iterator[TableClient]:
    with TableClient.from_connection_string(azurite.connection_string, HANDOFF_TABLE) as table:
        yield table


def handed_back(broker, fakes) -> str:
    """A handoff with a full audit: accepted, delivered, cross-linked, handed back."""
    thread = fakes.agents["ops"].create_thread("Ops: audit")["id"]
    handoff_id = broker.client.post("/api/handoffs", json=handoff_body(thread)).json()["id"]
    broker.wait_status(handoff_id, "delivered")
    broker.wait_for(handoff_id, lambda _: "crossLinked" in broker.audit_types(handoff_id))
    assert broker.client.post(f"/api/handoffs/{handoff_id}/handback", json=handback_body()).status_code == 202
    broker.wait_for(handoff_id, lambda _: "handedBack" in broker.audit_types(handoff_id))
    return handoff_id


def rows(table: TableClient, handoff_id: str) -> list[dict]:
    """The audit rows of a handoff (``a|NNNNNNNNNN`` in its partition), in order."""
    found = table.query_entities(
        "PartitionKey eq @pk and RowKey gt @low and RowKey lt @high",
        parameters={"pk": handoff_id, "low": AUDIT_PREFIX, "high": AUDIT_END},
    )
    return sorted(found, key=lambda e: e["RowKey"])


def seq_of(row: dict) -> int:
    return int(row["RowKey"].removeprefix(AUDIT_PREFIX))


def edit(table: TableClient, _id: str, found: list[dict]) -> int:
    row = dict(found[2])
    row["Details"] = json.dumps({**json.loads(row["Details"]), "threadId": "attacker-thread"})
    table.update_entity(row, mode=UpdateMode.REPLACE)
    return seq_of(row)


def delete(table: TableClient, _id: str, found: list[dict]) -> int:
    table.delete_entity(found[1]["PartitionKey"], found[1]["RowKey"])
    return seq_of(found[1])


def reorder(table: TableClient, _id: str, found: list[dict]) -> int:
    first, second = dict(found[1]), dict(found[2])
    for row, other in ((first, found[2]), (second, found[1])):
        swapped = {**other, "PartitionKey": row["PartitionKey"], "RowKey": row["RowKey"]}
        table.upsert_entity(swapped, mode=UpdateMode.REPLACE)
    return seq_of(found[1])


def insert(table: TableClient, handoff_id: str, found: list[dict]) -> int:
    # Shift every event from the third on by one and slip a forged approval in at the third place.
    for row in reversed(found[2:]):
        shifted = {**row, "RowKey": f"{AUDIT_PREFIX}{seq_of(row) + 1:010d}"}
        table.upsert_entity(shifted, mode=UpdateMode.REPLACE)
    forged = {
        **found[2],
        "Type": "approvalGranted",
        "Actor": "broker",
        "Details": json.dumps({"by": "admin"}),
    }
    table.upsert_entity(forged, mode=UpdateMode.REPLACE)
    return seq_of(found[2])


@pytest.mark.attack("audit")
@pytest.mark.parametrize("tamper", [edit, delete, reorder, insert], ids=lambda t: t.__name__)
def test_tampering_in_storage_is_reported_with_the_first_bad_sequence_number(
    broker, clean_fakes, audit_table, tamper: Tamper, security_figures
):
    handoff_id = handed_back(broker, clean_fakes)
    before = broker.client.get(f"/api/handoffs/{handoff_id}/audit/verify")
    assert before.status_code == 200 and before.json()["valid"] is True, before.text
    assert before.json()["events"] >= 5

    bad_seq = tamper(audit_table, handoff_id, rows(audit_table, handoff_id))
    after = broker.client.get(f"/api/handoffs/{handoff_id}/audit/verify").json()

    assert after["valid"] is False
    assert after["firstBadSeq"] == bad_seq, after
    security_figures[f"audit tampering detected ({tamper.__name__})"] = (
        security_figures.get(f"audit tampering detected ({tamper.__name__})", 0) + 1
    )


def test_every_event_carries_its_hash_and_the_previous_one(broker, clean_fakes):
    handoff_id = handed_back(broker, clean_fakes)
    events = broker.client.get(f"/api/handoffs/{handoff_id}/audit").json()["events"]
    assert "prevHash" not in events[0]
    for previous, event in itertools.pairwise(events):
        assert event["prevHash"] == previous["hash"]
        assert len(event["hash"]) == 64


def test_the_audit_is_paged_oldest_first(broker, clean_fakes):
    handoff_id = handed_back(broker, clean_fakes)
    everything = broker.client.get(f"/api/handoffs/{handoff_id}/audit").json()
    assert "continuationToken" not in everything
    seen, token = [], None
    while True:
        params = {"top": "2", **({"continuationToken": token} if token else {})}
        page = broker.client.get(f"/api/handoffs/{handoff_id}/audit", params=params).json()
        assert len(page["events"]) <= 2
        seen += [event["seq"] for event in page["events"]]
        token = page.get("continuationToken")
        if not token:
            break
    assert seen == [event["seq"] for event in everything["events"]]


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"top": "0"}, "top"),
        ({"top": "1001"}, "top"),
        ({"top": "9" * 5000}, "top"),
        ({"top": "²"}, "top"),
        ({"continuationToken": "abc"}, "continuationToken"),
        ({"continuationToken": "1" * 11}, "continuationToken"),
    ],
)
def test_bad_paging_parameters_are_400_naming_the_parameter(broker, clean_fakes, params, field):
    thread = clean_fakes.agents["ops"].create_thread("Ops")["id"]
    handoff_id = broker.client.post("/api/handoffs", json=handoff_body(thread)).json()["id"]
    response = broker.client.get(f"/api/handoffs/{handoff_id}/audit", params=params)
    assert response.status_code == 400, response.text
    assert response.json()["errors"][0]["field"] == field
