"""Storage layout 2 (one partition per handoff) is never mixed with layout 1: a broker started on storage
holding layout-1 data answers every request with a 503 that says so and what to do, and logs it once;
empty storage is marked as layout 2 on first use. Each test gets storage of its own (an Azurite of this
module, its tables dropped in between)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import UTC, datetime

import httpx
import pytest
from azure.core.exceptions import ResourceNotFoundError
from azure.data.tables import TableServiceClient

from devserver.azurite import Azurite, start_azurite
from handoff.adapters.azure_storage.clients import StorageClients
from handoff.adapters.azure_storage.handoffs import TableHandoffStore
from handoff.adapters.azure_storage.layout import (
    BROKER_PARTITION,
    LAYOUT_1_MESSAGE,
    LAYOUT_ROW,
    forget_checks,
)
from handoff.entrypoints.responses import to_problem
from handoff.ports import StorageLayoutMismatch
from handoff.settings import Settings
from tests.e2e.helpers import handoff_body
from tests.support.broker import BrokerProcess, broker_settings

OLD_ID = "5a0e9a4e-2222-4222-8222-000000000001"


@pytest.fixture(scope="module")
def storage() -> Iterator[Azurite]:
    instance = start_azurite()
    yield instance
    instance.stop()


@pytest.fixture
def empty(storage: Azurite) -> Iterator[Azurite]:
    """The module's Azurite with no tables, and this process's layout checks forgotten."""
    service = TableServiceClient.from_connection_string(storage.connection_string)
    for table in list(service.list_tables()):
        service.delete_table(table.name)
    forget_checks()
    yield storage
    forget_checks()


def _layout_1(azurite: Azurite) -> None:
    """What a layout-1 broker leaves: its secret, a handoff's request and state rows in ``handoffs``
    (the state without the audit's tail), and its audit event in ``handoffaudit``."""
    service = TableServiceClient.from_connection_string(azurite.connection_string)
    handoffs = service.create_table_if_not_exists("handoffs")
    handoffs.create_entity({"PartitionKey": BROKER_PARTITION, "RowKey": "idempotency", "Secret": "c2VjcmV0"})
    handoffs.create_entity({"PartitionKey": OLD_ID, "RowKey": "request", "Doc0": "{}"})
    handoffs.create_entity({"PartitionKey": OLD_ID, "RowKey": "state", "Status": "accepted", "Doc0": "{}"})
    audit = service.create_table_if_not_exists("handoffaudit")
    audit.create_entity({"PartitionKey": OLD_ID, "RowKey": "0000000001", "Type": "accepted", "Details": "{}"})


def _store(azurite: Azurite) -> TableHandoffStore:
    clients = StorageClients(Settings.from_env({"HANDOFF_STORAGE": azurite.connection_string}))
    clients.ensure()
    return TableHandoffStore(clients)


def test_empty_storage_is_marked_as_this_layout(empty: Azurite) -> None:
    store = _store(empty)
    assert len(store.secret("idempotency")) == 32
    row = store.table.get_entity(BROKER_PARTITION, LAYOUT_ROW)
    assert row["Version"] == 2
    forget_checks()  # another process, later: the mark is found
    assert _store(empty).get(OLD_ID) is None


@pytest.mark.parametrize("old_table", ["handoffs", "handoffaudit"])
def test_any_data_of_layout_1_is_refused_by_every_storage_call(
    empty: Azurite, old_table: str, caplog: pytest.LogCaptureFixture
) -> None:
    _layout_1(empty)
    service = TableServiceClient.from_connection_string(empty.connection_string)
    if old_table == "handoffaudit":  # only the audit is left of layout 1
        service.get_table_client("handoffs").delete_entity(OLD_ID, "request")
        service.get_table_client("handoffs").delete_entity(OLD_ID, "state")
    store = _store(empty)
    calls = [
        lambda: store.get(OLD_ID),
        lambda: store.list_audit(OLD_ID),
        lambda: store.append_audit(OLD_ID, "note", "broker", {}),
        lambda: store.secret("idempotency"),
        lambda: store.stale_pending(datetime.now(UTC)),
        store.ping,
    ]
    with caplog.at_level("ERROR", logger="handoff"):
        for call in calls:
            with pytest.raises(StorageLayoutMismatch) as refused:
                call()
            assert str(refused.value) == LAYOUT_1_MESSAGE
    assert [r.getMessage() for r in caplog.records].count(f"storage layout: {LAYOUT_1_MESSAGE}") == 1
    problem = to_problem(refused.value, "/api/handoffs")
    assert problem.status == 503 and problem.detail == LAYOUT_1_MESSAGE
    # Nothing was written: no layout mark, no row of layout 2.
    with pytest.raises(ResourceNotFoundError):
        service.get_table_client("handoffs").get_entity(BROKER_PARTITION, LAYOUT_ROW)


def test_another_layout_number_is_refused(empty: Azurite) -> None:
    store = _store(empty)
    store.table.upsert_entity({"PartitionKey": BROKER_PARTITION, "RowKey": LAYOUT_ROW, "Version": 3})
    with pytest.raises(StorageLayoutMismatch, match="storage layout 3"):
        store.get(OLD_ID)


def test_a_broker_on_layout_1_storage_answers_every_request_with_what_to_do(
    empty: Azurite, fakes, registry_config, tmp_path
) -> None:
    _layout_1(empty)
    env = broker_settings(
        fakes, registry_config, empty.connection_string, tmp_path, HANDOFF_SWEEP_SCHEDULE="*/2 * * * * *"
    )
    broker = BrokerProcess(env, tmp_path / "host.log")
    try:
        health = _first_answer(broker, "/api/health")
        assert health.status_code == 503 and health.json()["detail"] == LAYOUT_1_MESSAGE
        answers = [
            broker.client.post("/api/handoffs", json=handoff_body(None)),
            broker.client.get(f"/api/handoffs/{OLD_ID}"),
            broker.client.get(f"/api/handoffs/{OLD_ID}/audit"),
        ]
        for answer in answers:
            assert answer.status_code == 503, answer.text
            assert answer.headers["content-type"].startswith("application/problem+json")
            assert answer.json()["detail"] == LAYOUT_1_MESSAGE
        time.sleep(3)  # the sweeper's timer fires meanwhile: it says nothing more
        assert broker.logs().count("storage layout 1") == 1, broker.logs()[-3000:]
    finally:
        broker.stop()


def _first_answer(broker: BrokerProcess, path: str, timeout: float = 60) -> httpx.Response:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if broker.process.poll() is not None:
            raise RuntimeError(f"broker exited:\n{broker.logs()[-4000:]}")
        try:
            return broker.client.get(path)
        except httpx.TransportError:
            time.sleep(0.1)
    raise TimeoutError(f"no answer within {timeout}s:\n{broker.logs()[-4000:]}")
