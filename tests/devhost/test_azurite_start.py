"""Starting Azurite on free ports when another process takes one first (parallel test workers pick ports
at the same time): the start is tried again on other ports, and a port someone else answers on is never
taken for Azurite's."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from azure.data.tables import TableServiceClient

from devserver import azurite as azurite_module
from devserver.azurite import start_azurite
from tests.support.ports import port_taken_by_another_server


@pytest.fixture
def taken_port() -> Iterator[int]:
    """A port a server that is not Azurite answers on (as Azurite answers a bare GET: 400)."""
    with port_taken_by_another_server(400) as port:
        yield port


def test_a_picked_port_taken_before_azurite_binds_it_is_picked_again(
    taken_port: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    picks = iter([taken_port])  # the first pick is the port someone else took meanwhile
    free_port = azurite_module.free_port
    monkeypatch.setattr(azurite_module, "free_port", lambda: next(picks, None) or free_port())
    started = start_azurite()
    try:
        ports = (started.blob_port, started.queue_port, started.table_port)
        assert taken_port not in ports
        service = TableServiceClient.from_connection_string(started.connection_string)
        service.create_table("portstaken")
        assert [table.name for table in service.list_tables()] == ["portstaken"]
    finally:
        started.stop()


def test_a_port_asked_for_is_not_replaced(taken_port: int) -> None:
    with pytest.raises(RuntimeError, match="Azurite exited"):
        start_azurite(blob_port=taken_port)
