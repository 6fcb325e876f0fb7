"""Starting the broker on a free port when another process takes it first (parallel test workers pick
ports at the same time): the host exits saying the port is in use and the broker starts on another, and
a health answer from whoever holds the port is never taken for this broker's."""

from __future__ import annotations

import http.server
import json
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from devserver import azurite as azurite_module
from devserver.azurite import Azurite
from tests.support import broker as broker_module
from tests.support.broker import BrokerProcess


class _Healthy(http.server.BaseHTTPRequestHandler):
    """Another broker, as far as a health probe can tell."""

    def do_GET(self) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"{}")

    def log_message(self, *_: object) -> None:
        pass


@pytest.fixture
def taken_port() -> Iterator[int]:
    server = http.server.HTTPServer(("127.0.0.1", 0), _Healthy)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield server.server_port
    finally:
        server.shutdown()
        server.server_close()


def test_a_port_taken_before_the_host_binds_it_is_picked_again(
    azurite: Azurite, fakes, registry_config: dict, tmp_path: Path, taken_port: int, monkeypatch
) -> None:
    config = tmp_path / "handoff.config.json"
    config.write_text(json.dumps(registry_config))
    env = {
        **fakes.env(),
        "HANDOFF_CONFIG": str(config),
        "HANDOFF_STORAGE": azurite.connection_string,
        "AzureWebJobsStorage": azurite.connection_string,
    }
    picks = iter([taken_port])
    free_port = azurite_module.free_port
    monkeypatch.setattr(broker_module, "free_port", lambda: next(picks, None) or free_port())
    with BrokerProcess.running(env, tmp_path / "host.log") as broker:
        assert broker.port != taken_port
        assert broker.client.get("/api/agents").status_code in (200, 401)
    log = (tmp_path / "host.log").read_text()
    assert f"port {taken_port} is in use" in log and f"Host started: {broker.url}" in log
