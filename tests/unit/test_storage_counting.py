"""The storage-transaction counter: how requests are classified, and that it is attached only when on."""

from __future__ import annotations

import subprocess
import sys
import threading

import pytest
from azure.core.exceptions import ServiceRequestError
from azure.core.pipeline import PipelineContext, PipelineRequest
from azure.core.pipeline.transport import HttpRequest

from devserver.azurite import connection_string, free_port
from handoff.adapters.azure_storage import counting
from handoff.adapters.azure_storage.clients import KEY_CHARS, StorageClients, fitting_key
from handoff.adapters.azure_storage.counting import CountingPolicy, TransactionCounts
from handoff.settings import APP_ROOT, Settings

TABLES = "http://127.0.0.1:10002/devstoreaccount1"
QUEUES = "http://127.0.0.1:10001/devstoreaccount1"
ENTITY = "handoffs(PartitionKey='h-1',RowKey='state')"


@pytest.mark.parametrize(
    ("method", "url", "kind"),
    [
        ("POST", f"{TABLES}/handoffs", counting.TABLE_INSERT),
        ("GET", f"{TABLES}/{ENTITY}", counting.POINT_READ),
        ("GET", f"{TABLES}/handoffs(PartitionKey=%27h-1%27,RowKey=%27state%27)", counting.POINT_READ),
        ("GET", f"{TABLES}/handoffs()?$filter=PartitionKey%20eq%20%27h-1%27", counting.PARTITION_QUERY),
        (
            "GET",
            f"{TABLES}/handoffaudit()?%24filter=PartitionKey+eq+%27h-1%27+and+RowKey+ge+%2700001%27",
            counting.PARTITION_QUERY,
        ),
        ("GET", f"{TABLES}/handoffs()?$filter=Status%20eq%20%27accepted%27", counting.SCAN_QUERY),
        ("GET", f"{TABLES}/handoffs()", counting.SCAN_QUERY),
        ("PUT", f"{TABLES}/{ENTITY}", counting.UPDATE),
        ("MERGE", f"{TABLES}/{ENTITY}", counting.UPDATE),
        ("PATCH", f"{TABLES}/{ENTITY}", counting.UPDATE),
        ("DELETE", f"{TABLES}/{ENTITY}", counting.DELETE),
        ("POST", f"{TABLES}/$batch", counting.BATCH),
        ("POST", f"{TABLES}/Tables", counting.OTHER),
        ("DELETE", f"{TABLES}/Tables('handoffs')", counting.OTHER),
        ("POST", f"{QUEUES}/handoff-deliveries/messages", counting.QUEUE_SEND),
        ("POST", f"{QUEUES}/handoff-deliveries/messages?visibilitytimeout=5", counting.QUEUE_SEND),
        ("GET", f"{QUEUES}/handoff-deliveries/messages?numofmessages=16", counting.QUEUE_RECEIVE),
        ("GET", f"{QUEUES}/handoff-deliveries/messages?peekonly=true", counting.OTHER),
        ("DELETE", f"{QUEUES}/handoff-deliveries/messages/abc?popreceipt=x", counting.QUEUE_DELETE),
        ("PUT", f"{QUEUES}/handoff-deliveries/messages/abc?popreceipt=x", counting.OTHER),
        ("PUT", f"{QUEUES}/handoff-deliveries", counting.OTHER),
        # Azure (no account segment in the path)
        ("POST", "https://acct.table.core.windows.net/handoffs", counting.TABLE_INSERT),
        ("POST", "https://acct.queue.core.windows.net/q/messages", counting.QUEUE_SEND),
    ],
)
def test_each_request_is_counted_as_its_kind(method: str, url: str, kind: str) -> None:
    counts = TransactionCounts()
    policy = CountingPolicy(counts)

    policy.on_request(PipelineRequest(HttpRequest(method, url), PipelineContext(None)))

    assert counts.snapshot() == {kind: 1}


def test_counts_are_kept_per_label_and_reset() -> None:
    counts = TransactionCounts()
    counts.add(counting.POINT_READ)
    with counts.labelled("create_handoff"):
        counts.add(counting.TABLE_INSERT, 2)
        counts.add(counting.POINT_READ)

    assert counts.snapshot() == {counting.POINT_READ: 2, counting.TABLE_INSERT: 2}
    assert counts.by_label() == {
        "": {counting.POINT_READ: 1},
        "create_handoff": {counting.TABLE_INSERT: 2, counting.POINT_READ: 1},
    }
    counts.reset()
    assert counts.snapshot() == {}


def test_a_trace_keeps_each_request_in_order() -> None:
    counts = TransactionCounts()
    policy = CountingPolicy(counts)
    counts.start_trace()
    with counts.labelled("deliver"):
        policy.on_request(PipelineRequest(HttpRequest("GET", f"{TABLES}/{ENTITY}"), PipelineContext(None)))
    policy.on_request(PipelineRequest(HttpRequest("POST", f"{TABLES}/$batch"), PipelineContext(None)))

    assert counts.stop_trace() == [
        ("deliver", counting.POINT_READ, f"GET {TABLES}/{ENTITY}"),
        ("", counting.BATCH, f"POST {TABLES}/$batch"),
    ]
    counts.add(counting.BATCH)
    assert counts.stop_trace() == []


def test_counting_is_thread_safe() -> None:
    counts = TransactionCounts()

    def work() -> None:
        for _ in range(2000):
            counts.add(counting.UPDATE)

    threads = [threading.Thread(target=work) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert counts.snapshot() == {counting.UPDATE: 16000}


def _unreachable_clients(*, count: bool) -> StorageClients:
    # Nothing listens on these ports: each call fails at once (fast clients never retry).
    port = free_port()
    settings = Settings(
        storage_connection_string=connection_string(port, port, port), count_storage_transactions=count
    )
    return StorageClients(settings, fast=True)


def test_clients_count_their_requests_when_the_setting_is_on() -> None:
    clients = _unreachable_clients(count=True)
    counting.COUNTS.reset()

    with pytest.raises(ServiceRequestError):
        clients.table("handoffs").get_entity("h-1", "state")
    with pytest.raises(ServiceRequestError):
        clients.queue("handoff-deliveries").send_message("{}")

    assert counting.COUNTS.snapshot() == {counting.POINT_READ: 1, counting.QUEUE_SEND: 1}


def test_clients_count_nothing_when_the_setting_is_off() -> None:
    clients = _unreachable_clients(count=False)
    counting.COUNTS.reset()

    with pytest.raises(ServiceRequestError):
        clients.table("handoffs").get_entity("h-1", "state")
    with pytest.raises(ServiceRequestError):
        clients.queue("handoff-deliveries").send_message("{}")

    assert counting.COUNTS.snapshot() == {}


def test_the_counting_module_is_not_imported_when_the_setting_is_off() -> None:
    probe = (
        "import sys\n"
        "from handoff.adapters.azure_storage.clients import StorageClients\n"
        "from handoff.settings import Settings\n"
        "StorageClients(Settings(storage_connection_string='UseDevelopmentStorage=true'))\n"
        "print('handoff.adapters.azure_storage.counting' in sys.modules)\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", probe], cwd=APP_ROOT, capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == "False"


def test_a_key_too_long_for_storage_is_keyed_by_its_hash():
    short = "/subscriptions/s/resourcegroups/g"
    assert fitting_key("s|", short) == "s|%2Fsubscriptions%2Fs%2Fresourcegroups%2Fg"
    deep = "/subscriptions/s/providers/p" + "/x/y" * 240  # 1,000 characters, 2,000 once encoded
    key = fitting_key("s|", deep)
    assert len(key) <= KEY_CHARS and key.startswith("s|~sha256~")
    assert key == fitting_key("s|", deep) != fitting_key("s|", deep + "/z/w")  # writes and reads meet
