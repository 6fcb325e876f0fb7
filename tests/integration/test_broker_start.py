"""Starting the broker on a free port when another process takes it first (parallel test workers pick
ports at the same time): the host exits saying the port is in use and the broker starts on another, and
a health answer from whoever holds the port is never taken for this broker's."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from devserver import azurite as azurite_module
from devserver.azurite import Azurite
from tests.support import broker as broker_module
from tests.support.broker import BrokerProcess, broker_settings
from tests.support.ports import port_taken_by_another_server


@pytest.fixture
def taken_port() -> Iterator[int]:
    """A port another server answers on, healthy as far as a health probe can tell."""
    with port_taken_by_another_server(200, b"{}") as port:
        yield port


def test_a_port_taken_before_the_host_binds_it_is_picked_again(
    azurite: Azurite, fakes, registry_config: dict, tmp_path: Path, taken_port: int, monkeypatch
) -> None:
    env = broker_settings(fakes, registry_config, azurite.connection_string, tmp_path)
    picks = iter([taken_port])
    free_port = azurite_module.free_port
    monkeypatch.setattr(broker_module, "free_port", lambda: next(picks, None) or free_port())
    with BrokerProcess.running(env, tmp_path / "host.log") as broker:
        assert broker.port != taken_port
        assert broker.client.get("/api/agents").status_code in (200, 401)
    log = (tmp_path / "host.log").read_text()
    assert f"port {taken_port} is in use" in log and f"Host started: {broker.url}" in log
