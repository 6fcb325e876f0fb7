"""The storage clients' transport on real storage (Azurite): entity-group transactions are prepared and
parsed on the calling thread with the SDK's own outcome (written entities, the failing operation's error
code), the clients share one connection pool, and requests' ``~/.netrc`` credentials never reach a
storage request."""

from __future__ import annotations

import base64
import http.server
import re
import socket
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from azure.core import __version__ as azure_core_version
from azure.core.exceptions import ServiceResponseTimeoutError
from azure.core.pipeline.transport import HttpRequest
from azure.data.tables import TableClient, TableTransactionError

from devserver.azurite import Azurite
from handoff.adapters.azure_storage.batches import INLINE_BATCHES_FOR, prepare_batches_inline
from handoff.adapters.azure_storage.clients import StorageClients, already_exists
from handoff.adapters.http import make_storage_transport
from handoff.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
TABLE = "transporttest"


@pytest.fixture
def clients(azurite: Azurite) -> StorageClients:
    made = StorageClients(Settings.from_env({"HANDOFF_STORAGE": azurite.connection_string}))
    made.tables.create_table_if_not_exists(TABLE)
    return made


def _rows(table: TableClient, partition: str) -> list[dict[str, Any]]:
    found = table.query_entities("PartitionKey eq @p", parameters={"p": partition})
    return sorted((dict(row) for row in found), key=lambda row: (len(row["RowKey"]), row["RowKey"]))


def test_inline_batches_are_written_for_the_pinned_azure_core() -> None:
    pinned = re.search(r"^azure-core==(\S+)$", (ROOT / "constraints.txt").read_text(), re.MULTILINE)
    assert pinned is not None
    # Upgrading azure-core means reviewing batches.prepare_batches_inline against its new internals.
    assert pinned.group(1) == INLINE_BATCHES_FOR == azure_core_version
    assert prepare_batches_inline() is True


def test_a_transaction_starts_no_thread_and_writes_every_entity(
    clients: StorageClients, monkeypatch: pytest.MonkeyPatch
) -> None:
    table = clients.table(TABLE)
    partition = str(uuid.uuid4())
    operations = [("create", {"PartitionKey": partition, "RowKey": f"r{n}", "N": n}) for n in range(5)]
    started: list[str] = []
    original = threading.Thread.start

    def start(thread: threading.Thread) -> None:
        started.append(thread.name)
        original(thread)

    with monkeypatch.context() as patched:
        patched.setattr(threading.Thread, "start", start)
        results = table.submit_transaction(operations)
    assert started == []
    assert len(results) == 5 and all("etag" in result for result in results)
    assert [row["N"] for row in _rows(table, partition)] == [0, 1, 2, 3, 4]


def test_a_failing_transaction_names_its_cause_and_writes_nothing(clients: StorageClients) -> None:
    table = clients.table(TABLE)
    partition = str(uuid.uuid4())
    table.create_entity({"PartitionKey": partition, "RowKey": "taken"})
    operations = [
        ("create", {"PartitionKey": partition, "RowKey": "new"}),
        ("create", {"PartitionKey": partition, "RowKey": "taken"}),
    ]
    with pytest.raises(TableTransactionError) as failed:
        table.submit_transaction(operations)
    assert already_exists(failed.value)
    assert [row["RowKey"] for row in _rows(table, partition)] == ["taken"]


# Sub-requests of a Table batch as the SDK makes them (JSON, so ASCII), and bare CR and LF line ends it
# never makes, which the email generator turns into CRLF.
BATCH_PARTS: list[list[tuple[str, str, bytes]]] = [
    [],
    [("POST", "/devstoreaccount1/t", b'{"PartitionKey": "p", "RowKey": "r0", "Text": "one\\ntwo"}')],
    [
        ("POST", "/devstoreaccount1/t", b'{"PartitionKey": "p", "RowKey": "r0"}'),
        ("PATCH", "/devstoreaccount1/t(PartitionKey='p',RowKey='r1')", b'{"Text": "caf\\u00e9 \\u2603"}'),
        ("PUT", "/devstoreaccount1/t(PartitionKey='p',RowKey='r2')", b'{"a": 1}\n{"b": "bare\rcr"}\r\n'),
        ("DELETE", "/devstoreaccount1/t(PartitionKey='p',RowKey='r3')", b""),
    ],
]


def _batch_request(parts: list[tuple[str, str, bytes]]) -> Any:
    from azure.core.rest import HttpRequest as RestHttpRequest

    host = "http://127.0.0.1:10002"
    operations = [
        RestHttpRequest(method, host + path, content=body or None,
                        headers={"Content-Type": "application/json;odata=nometadata", "If-Match": "*",
                                 "x-ms-date": "Wed, 02 Dec 2026 10:00:00 GMT"})
        for method, path, body in parts
    ]  # fmt: skip
    changeset = RestHttpRequest("POST", "")
    changeset.set_multipart_mixed(*operations, policies=[], boundary="changeset_8a1f")
    batch = RestHttpRequest(
        "POST", f"{host}/devstoreaccount1/$batch", headers={"Content-Type": "application/json"}
    )
    batch.set_multipart_mixed(changeset, policies=[], boundary="batch_2c9d", enforce_https=False)
    return batch


@pytest.mark.parametrize("parts", BATCH_PARTS, ids=["empty", "one", "four-odd-line-ends"])
def test_a_batch_body_is_the_bytes_azure_core_writes(parts: list[tuple[str, str, bytes]]) -> None:
    from azure.core.rest import _helpers
    from azure.core.utils import _pipeline_transport_rest_shared as shared

    from handoff.adapters.azure_storage.batches import multipart_body

    prepare_batches_inline()
    theirs, ours = _batch_request(parts), _batch_request(parts)
    with pytest.MonkeyPatch.context() as sdk:  # azure-core's own helper, nested changeset included
        sdk.setattr(_helpers, "_prepare_multipart_body_helper", shared._prepare_multipart_body_helper)
        their_index = theirs.prepare_multipart_body()
    assert multipart_body(ours) == their_index == len(parts)
    assert ours.content == theirs.content
    assert (
        ours.headers["Content-Type"]
        == theirs.headers["Content-Type"]
        == "multipart/mixed; boundary=batch_2c9d"
    )
    assert b"\r\n--changeset_8a1f--\r\n" in ours.content


def test_every_client_shares_one_connection_pool(clients: StorageClients) -> None:
    # The SDKs keep their transports private: the table clients wrap the service client's one.
    tables: list[Any] = [clients.table(TABLE), clients.table("another")]
    sessions = {id(client._client._client._pipeline._transport._transport.session) for client in tables}
    queue: Any = clients.queue("handoff-deliveries")
    sessions.add(id(queue._pipeline._transport.session))
    assert len(sessions) == 1


@pytest.mark.parametrize(("fast", "timeouts"), [(True, (2, 2)), (False, (5, 20))])
def test_the_timeouts_are_the_transports(azurite: Azurite, fast: bool, timeouts: tuple[int, int]) -> None:
    # The SDKs apply client-level timeouts only to a transport they build; this one is built here.
    made = StorageClients(Settings.from_env({"HANDOFF_STORAGE": azurite.connection_string}), fast=fast)
    table: Any = made.table(TABLE)
    queue: Any = made.queue("handoff-deliveries")
    for transport in (table._client._client._pipeline._transport._transport, queue._pipeline._transport):
        config = transport.connection_config
        assert (config.timeout, config.read_timeout) == timeouts


def test_a_silent_storage_times_out_on_the_probes_timeout() -> None:
    """A storage endpoint that accepts the connection and never answers: the health probe's client
    gives up with a read timeout (without one it would wait until the server hung up: another error)."""
    server = socket.create_server(("127.0.0.1", 0))
    accepted: list[socket.socket] = []
    threading.Thread(target=lambda: accepted.append(server.accept()[0]), daemon=True).start()

    def hang_up_everything() -> None:
        for connection in accepted:
            connection.close()
        server.close()

    # A bound on the test if no timeout applied, and then a different error: the server hung up.
    hang_up = threading.Timer(15, hang_up_everything)
    hang_up.start()
    port = server.getsockname()[1]
    connection_string = (
        "DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;"
        f"AccountKey={base64.b64encode(b'k' * 64).decode()};"
        f"TableEndpoint=http://127.0.0.1:{port}/devstoreaccount1;"
        f"QueueEndpoint=http://127.0.0.1:{port}/devstoreaccount1;"
    )
    made = StorageClients(Settings.from_env({"HANDOFF_STORAGE": connection_string}), fast=True)
    try:
        with pytest.raises(ServiceResponseTimeoutError):
            made.table(TABLE).get_entity("p", "r")
    finally:
        hang_up.cancel()
        hang_up_everything()


@pytest.fixture
def header_server() -> Iterator[tuple[str, list[tuple[str, dict[str, str]]]]]:
    """A server that answers every GET with 200 and records its request target and headers (a proxy
    is sent the absolute URL)."""
    seen: list[tuple[str, dict[str, str]]] = []

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            seen.append((self.path, dict(self.headers)))
            self.send_response(200)
            self.send_header("Set-Cookie", "affinity=abc; Path=/")
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *_: object) -> None:
            pass

    server = http.server.HTTPServer(("127.0.0.1", 0), Handler)
    worker = threading.Thread(target=server.serve_forever, daemon=True)
    worker.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}/", seen
    finally:
        server.shutdown()
        server.server_close()


def test_netrc_credentials_and_cookies_never_reach_a_storage_request(
    header_server: tuple[str, list[tuple[str, dict[str, str]]]],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    url, requests_seen = header_server
    netrc = tmp_path / ".netrc"
    netrc.write_text("machine 127.0.0.1 login someone password not-for-storage\n")
    netrc.chmod(0o600)
    monkeypatch.setenv("NETRC", str(netrc))
    transport = make_storage_transport(connection_timeout=2, read_timeout=2)
    with transport:
        for _ in range(2):  # the first answer sets a cookie
            assert transport.send(HttpRequest("GET", url)).status_code == 200
    seen = [headers for _, headers in requests_seen]
    assert len(seen) == 2
    assert all("Authorization" not in headers for headers in seen)
    assert "Cookie" not in seen[1]


def test_environment_proxies_apply_to_storage_and_are_read_once_per_host(
    header_server: tuple[str, list[tuple[str, dict[str, str]]]], monkeypatch: pytest.MonkeyPatch
) -> None:
    import requests

    url, seen = header_server
    monkeypatch.setenv("HTTP_PROXY", url)
    monkeypatch.setenv("NO_PROXY", "127.0.0.1")
    looked_up: list[str] = []
    environ_proxies = requests.utils.get_environ_proxies

    def counted(target: str, no_proxy: str | None = None) -> dict[str, str]:
        looked_up.append(target)
        return environ_proxies(target, no_proxy=no_proxy)

    monkeypatch.setattr(requests.utils, "get_environ_proxies", counted)
    transport = make_storage_transport(connection_timeout=2, read_timeout=2)
    proxied = "http://storage.example/devstoreaccount1/t"  # never resolved: only the proxy is reached
    direct = url + "devstoreaccount1/q"
    with transport:
        for _ in range(3):
            assert transport.send(HttpRequest("GET", proxied)).status_code == 200
            assert transport.send(HttpRequest("GET", direct)).status_code == 200
    # Through the proxy (absolute URL) unless NO_PROXY names the host, as requests does...
    assert [target for target, _ in seen] == [proxied, "/devstoreaccount1/q"] * 3
    # ...with the environment read once per host, not on every request.
    assert sorted(looked_up) == sorted([proxied, direct])
