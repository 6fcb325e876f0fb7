"""The stack helper and the background server helper."""

from __future__ import annotations

import httpx
import pytest
from starlette.responses import PlainTextResponse

from devserver.fakes.stack import agent_resource_id
from devserver.servers import ServerThread


async def hello(scope, receive, send):
    await PlainTextResponse("hello")(scope, receive, send)


def test_server_thread_start_and_stop():
    server = ServerThread(hello).start()
    assert server.url.startswith("http://127.0.0.1:")
    assert httpx.get(server.url).text == "hello"
    server.stop()
    assert not server.started
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"http://127.0.0.1:{server.port}/", timeout=1)
    with pytest.raises(RuntimeError):
        _ = server.url


def test_server_thread_context_manager():
    with ServerThread(hello) as first, ServerThread(hello) as second:
        assert first.port != second.port
        assert httpx.get(second.url).status_code == 200


def test_stack_layout(stack):
    assert set(stack.agents) == {"ops", "checkout"}
    ops = stack.agents["ops"]
    assert ops.resource_id == agent_resource_id("00000000-0000-0000-0000-000000000000", "rg-local", "ops")
    assert ops.resource_id.endswith("/providers/Microsoft.App/agents/ops-agent")
    assert ops.endpoint != stack.agents["checkout"].endpoint
    assert stack.identity_endpoint.endswith("/msi/token")
    assert {item["id"] for item in stack.arm.resources()} == {a.resource_id for a in stack.agents.values()}
    config = stack.registry_config()
    assert config["agents"][0] == {
        "name": "ops",
        "resourceId": ops.resource_id,
        "endpoint": ops.endpoint,
        "delivery": {"mode": "thread"},
        "allowInsecureLocal": True,
    }
    assert "endpoint" not in stack.registry_config(with_endpoints=False)["agents"][0]
