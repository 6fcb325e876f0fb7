"""The MCP endpoint as deployed: Host = the function app's name (WEBSITE_HOSTNAME) or a listed extra host."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from tests.e2e.helpers import contract_errors, handoff_body
from tests.support.broker import BrokerProcess

AZURE_HOST = "func-handoff-test.azurewebsites.net"
EXTRA_HOST = "handoff.contoso.example"


@pytest.fixture(scope="module")
def azure_broker(broker_env, tmp_path_factory) -> Iterator[BrokerProcess]:
    """The broker as it runs in Azure: WEBSITE_HOSTNAME set (so callers count as function-key callers)."""
    env = {**broker_env, "WEBSITE_HOSTNAME": AZURE_HOST, "HANDOFF_MCP_ALLOWED_HOSTS": f" {EXTRA_HOST} ,"}
    with BrokerProcess.running(env, tmp_path_factory.mktemp("azure-broker") / "host.log") as process:
        yield process


def rpc(broker: BrokerProcess, host: str, method: str, params: dict | None = None) -> httpx.Response:
    message = {"jsonrpc": "2.0", "id": 1, "method": method, **({"params": params} if params else {})}
    return broker.client.post(
        "/api/mcp",
        json=message,
        headers={
            "Host": host,
            "Accept": "application/json, text/event-stream",
            "MCP-Protocol-Version": "2025-06-18",
            # what an SRE Agent connector sends; the Functions host checks it in Azure
            "x-functions-key": "not-checked-by-the-local-host",
        },
    )


def test_azure_host_name_is_accepted_and_unknown_hosts_are_refused(azure_broker):
    initialize = {
        "protocolVersion": "2025-06-18",
        "capabilities": {},
        "clientInfo": {"name": "sre-agent", "version": "1"},
    }

    azure = rpc(azure_broker, AZURE_HOST, "initialize", initialize)
    extra = rpc(azure_broker, EXTRA_HOST, "initialize", initialize)
    unknown = rpc(azure_broker, "func-other.azurewebsites.net", "initialize", initialize)
    lookalike = rpc(azure_broker, f"{AZURE_HOST}.attacker.example", "initialize", initialize)

    assert azure.status_code == 200, azure.text
    assert azure.json()["result"]["serverInfo"]["name"] == "handoff-broker"
    assert extra.status_code == 200
    assert unknown.status_code == 421
    assert lookalike.status_code == 421


def test_tool_call_under_the_azure_name_acts_as_a_function_key_caller(azure_broker, clean_fakes):
    response = rpc(
        azure_broker, AZURE_HOST, "tools/call", {"name": "handoff_create", "arguments": handoff_body(None)}
    )

    assert response.status_code == 200, response.text
    result = response.json()["result"]
    assert result["isError"] is False
    handoff_id = result["structuredContent"]["id"]
    assert contract_errors("handoff-status", result["structuredContent"]) == []
    events = azure_broker.client.get(f"/api/handoffs/{handoff_id}/audit").json()["events"]
    assert events[0]["type"] == "accepted" and events[0]["actor"] == "functionKey"
