"""The MCP endpoint through the official ``mcp`` client over real HTTP, against the broker (local host)."""

from __future__ import annotations

import json
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

import anyio
import httpx
import pytest
from mcp import Client

import handoff
from handoff.domain.models import HandbackRequest, HandoffRequest
from handoff.entrypoints.contract_schemas import bundled_schema
from tests.e2e.helpers import (
    INITIALIZE,
    contract_errors,
    handback_body,
    handoff_body,
    messages_mentioning,
    threads_mentioning,
)

TOOL_NAMES = {
    "handoff_create",
    "handoff_get",
    "handoff_hand_back",
    "handoff_links",
    "handoff_list_agents",
    "handoff_history",
    "handoff_list",
}


def with_client(broker, use: Callable[[Client], Awaitable[Any]], mode: str = "legacy") -> Any:
    """Open the SDK client on the broker's MCP endpoint, run ``use`` and return its result."""

    async def main() -> Any:
        async with Client(f"{broker.url}/api/mcp", mode=mode) as client:  # type: ignore[arg-type]
            return await use(client)

    return anyio.run(main)


def call(broker, name: str, arguments: dict[str, Any]) -> Any:
    """Call one tool in a fresh client session."""
    return with_client(broker, lambda client: client.call_tool(name, arguments))


def text_of(result: Any) -> str:
    return "\n".join(block.text for block in result.content)


@pytest.mark.filterwarnings("ignore:ping is removed")
@pytest.mark.parametrize("mode", ["legacy", "auto"])
def test_initialize_ping_and_list_tools(broker, mode):
    async def use(client: Client) -> Any:
        if mode == "legacy":
            # The initialize handshake and the health ping an SRE Agent connector performs.
            await client.send_ping()
            assert client.server_info is not None and client.server_info.name == "handoff-broker"
        return await client.list_tools()

    listed = with_client(broker, use, mode)

    tools = {tool.name: tool for tool in listed.tools}
    assert set(tools) == TOOL_NAMES
    # Input schemas are the REST models' own schemas.
    create_schema = tools["handoff_create"].input_schema
    rest_create = HandoffRequest.model_json_schema(by_alias=True)["properties"]
    assert {name: create_schema["properties"][name] for name in rest_create} == rest_create
    assert set(create_schema["properties"]) == set(rest_create) | {"idempotencyKey"}
    assert set(create_schema["required"]) == {"source", "target", "context"}
    hand_back = tools["handoff_hand_back"].input_schema
    rest_fields = HandbackRequest.model_json_schema(by_alias=True)["properties"]
    assert set(hand_back["properties"]) == set(rest_fields) | {"handoffId"}
    assert "handoffId" in hand_back["required"]
    # ... which are the handoff contract's schemas (spec/handoff-context/v1), plus each tool's extra
    # argument; the tools that answer with a handoff publish the contract's status schema.
    contract_create = {**create_schema, "properties": dict(create_schema["properties"])}
    del contract_create["properties"]["idempotencyKey"]
    assert contract_create == bundled_schema("handoff-request")
    contract_hand_back = {**hand_back, "properties": dict(hand_back["properties"])}
    del contract_hand_back["properties"]["handoffId"]
    contract_hand_back["required"] = [name for name in hand_back["required"] if name != "handoffId"]
    assert contract_hand_back == bundled_schema("handback-request")
    for name in ("handoff_create", "handoff_get", "handoff_hand_back"):
        assert tools[name].output_schema == bundled_schema("handoff-status"), name
    assert tools["handoff_get"].annotations.read_only_hint is True
    assert tools["handoff_create"].annotations.read_only_hint is False
    for tool in tools.values():
        assert len(tool.description) > 80  # written for a model choosing among many tools


def test_create_with_an_idempotency_key_does_not_open_a_second_handoff(broker, clean_fakes):
    body = {**handoff_body(None), "idempotencyKey": f"mcp-{uuid.uuid4()}"}
    first = call(broker, "handoff_create", body)
    again = call(broker, "handoff_create", body)
    assert not first.is_error and not again.is_error, text_of(again)
    handoff_id = first.structured_content["id"]
    assert again.structured_content["id"] == handoff_id
    broker.wait_status(handoff_id, "delivered")
    assert len(threads_mentioning(clean_fakes.agents["checkout"], handoff_id)) == 1
    changed = {**body, "intent": "consult"}
    conflict = call(broker, "handoff_create", changed)
    assert conflict.is_error and "Idempotency-Key" in text_of(conflict)


def test_create_delivers_and_hand_back_returns_to_source_thread(broker, clean_fakes):
    ops, checkout = clean_fakes.agents["ops"], clean_fakes.agents["checkout"]
    source_thread = ops.create_thread("Ops: exception burst")["id"]
    body = handoff_body(source_thread)

    created = call(broker, "handoff_create", body)

    assert not created.is_error, text_of(created)
    handoff_id = created.structured_content["id"]
    assert json.loads(text_of(created))["id"] == handoff_id
    assert contract_errors("handoff-status", created.structured_content) == []
    delivered = broker.wait_for(
        handoff_id, lambda b: b["status"] == "delivered" and b["target"].get("threadId")
    )
    threads = threads_mentioning(checkout, handoff_id)
    assert len(threads) == 1 and body["context"]["title"] in threads[0]["startMessage"]["text"]
    audit = broker.client.get(f"/api/handoffs/{handoff_id}/audit").json()["events"]
    assert audit[0]["type"] == "accepted" and audit[0]["actor"] == "local"

    got = call(broker, "handoff_get", {"handoffId": handoff_id})
    assert not got.is_error
    assert got.structured_content["target"]["threadId"] == delivered["target"]["threadId"]
    assert got.structured_content["chain"] == {"children": []}
    assert contract_errors("handoff-status", got.structured_content) == []

    target_thread = delivered["target"]["threadId"]
    links = call(broker, "handoff_links", {"agent": "ops", "threadId": source_thread})
    assert [(link["relation"], link["peer"]["threadId"]) for link in links.structured_content["links"]] == [
        ("handedOffTo", target_thread)
    ]

    back = call(
        broker, "handoff_hand_back", {"handoffId": handoff_id, **handback_body(thread_id=target_thread)}
    )
    assert not back.is_error, text_of(back)
    assert back.structured_content["handbacks"][0]["summary"] == handback_body()["summary"]
    assert contract_errors("handoff-status", back.structured_content) == []
    broker.wait_status(handoff_id, "handedBack")
    summary = handback_body()["summary"]
    assert len(messages_mentioning(ops, source_thread, summary)) == 1


def test_history_tool_finds_an_earlier_investigation_of_a_resource(broker, clean_fakes):
    body = handoff_body(None)
    resource = f"{body['context']['resources'][0]}-{uuid.uuid4().hex[:6]}"
    body["context"]["resources"] = [resource]
    handoff_id = broker.client.post("/api/handoffs", json=body).json()["id"]
    broker.wait_status(handoff_id, "delivered")
    assert broker.client.post(f"/api/handoffs/{handoff_id}/handback", json=handback_body()).status_code == 202
    broker.wait_status(handoff_id, "handedBack")

    result = call(broker, "handoff_history", {"resource": resource.upper()})

    assert not result.is_error, text_of(result)
    items = result.structured_content["items"]
    assert [item["handoffId"] for item in items] == [handoff_id]
    assert items[0]["rootCause"] == handback_body()["rootCause"]
    bad = call(broker, "handoff_history", {"outcome": "solved"})
    assert bad.is_error and "/outcome" in text_of(bad)


def test_list_tool_lists_handoffs_newest_first_with_the_rest_filters(broker, clean_fakes):
    first = broker.client.post("/api/handoffs", json=handoff_body(None, target="payments")).json()["id"]
    second = broker.client.post("/api/handoffs", json=handoff_body(None, target="payments")).json()["id"]
    for handoff_id in (first, second):
        broker.wait_status(handoff_id, "delivered")

    result = call(broker, "handoff_list", {"target": "payments", "status": "delivered", "top": 100})

    assert not result.is_error, text_of(result)
    ids = [item["id"] for item in result.structured_content["items"]]
    assert ids.index(second) < ids.index(first)
    item = result.structured_content["items"][ids.index(first)]
    assert (item["source"], item["target"], item["status"]) == ("ops", "payments", "delivered")
    bad = call(broker, "handoff_list", {"since": "last week"})
    assert bad.is_error and "since" in text_of(bad)
    forged = call(broker, "handoff_list", {"continuationToken": "eyJ4IjoxfQ.AAAA"})
    assert forged.is_error and "continuationToken" in text_of(forged)


def test_list_agents_describes_each_agent(broker, registry_config):
    result = call(broker, "handoff_list_agents", {})

    assert not result.is_error
    agents = {agent["name"]: agent for agent in result.structured_content["agents"]}
    assert set(agents) == {agent["name"] for agent in registry_config["agents"]}
    assert agents["checkout"]["description"] == "checkout test agent"
    assert agents["payments"]["resourceId"].endswith("/agents/payments-agent")
    assert agents["ops"]["delivery"] == "thread"


def test_tool_errors_carry_the_problem(broker, clean_fakes):
    checkout = clean_fakes.agents["checkout"]
    before = len(checkout.threads())

    unknown_target = call(broker, "handoff_create", handoff_body(None, target="nobody"))
    not_found = call(broker, "handoff_get", {"handoffId": "00000000-0000-4000-8000-000000000000"})
    missing = call(broker, "handoff_get", {})

    assert unknown_target.is_error
    assert text_of(unknown_target).startswith("The request body is not valid (422): /target/agent:")
    assert "- /target/agent: 'nobody' is not a registered agent" in text_of(unknown_target)
    problem = unknown_target.structured_content
    assert problem["status"] == 422 and problem["errors"][0]["field"] == "/target/agent"
    assert not_found.is_error and text_of(not_found).startswith("Not found (404): no handoff with id")
    assert missing.is_error and "- /handoffId: Field required" in text_of(missing)
    assert len(checkout.threads()) == before  # nothing was delivered


def test_hand_back_by_another_agent_is_refused(broker, clean_fakes):
    created = call(broker, "handoff_create", handoff_body(None))
    handoff_id = created.structured_content["id"]
    broker.wait_status(handoff_id, "delivered")

    refused = call(broker, "handoff_hand_back", {"handoffId": handoff_id, **handback_body(agent="payments")})

    assert refused.is_error
    assert text_of(refused).startswith("Forbidden (403): only the handoff's target agent 'checkout'")
    assert broker.client.get(f"/api/handoffs/{handoff_id}").json()["handbacks"] == []


def test_host_allow_list(broker):
    port = broker.port
    accepted = broker.client.post("/api/mcp", json=INITIALIZE, headers=_mcp_headers(f"127.0.0.1:{port}"))
    also_localhost = broker.client.post(
        "/api/mcp", json=INITIALIZE, headers=_mcp_headers(f"localhost:{port}")
    )
    unknown = broker.client.post("/api/mcp", json=INITIALIZE, headers=_mcp_headers("attacker.example"))
    bad_origin = broker.client.post(
        "/api/mcp",
        json=INITIALIZE,
        headers={**_mcp_headers(f"127.0.0.1:{port}"), "Origin": "https://attacker.example"},
    )

    assert accepted.status_code == 200, accepted.text
    assert accepted.json()["result"]["serverInfo"]["name"] == "handoff-broker"
    assert also_localhost.status_code == 200
    assert unknown.status_code == 421
    assert bad_origin.status_code == 403


def test_get_and_delete_are_not_served(broker):
    get = broker.client.get("/api/mcp", headers={"Accept": "text/event-stream"})
    delete = broker.client.delete("/api/mcp")

    assert get.status_code == 405 and get.headers["allow"] == "POST"
    assert delete.status_code == 405


def _mcp_headers(host: str) -> dict[str, str]:
    return {"Host": host, "Accept": "application/json, text/event-stream", "Content-Type": "application/json"}


def test_request_is_answered_without_a_session(broker):
    # Stateless: a tools/list with no initialize and no session id is served by any instance.
    response = broker.client.post(
        "/api/mcp",
        json={"jsonrpc": "2.0", "id": 7, "method": "tools/list"},
        headers={**_mcp_headers(f"127.0.0.1:{broker.port}"), "MCP-Protocol-Version": "2025-06-18"},
    )

    assert response.status_code == 200, response.text
    assert "mcp-session-id" not in response.headers
    assert {tool["name"] for tool in response.json()["result"]["tools"]} == TOOL_NAMES


def test_plain_http_client_sees_json(broker):
    # The answer is one JSON document, not an event stream: the Functions host buffers responses.
    response = httpx.post(
        f"{broker.url}/api/mcp", json=INITIALIZE, headers={"Accept": "application/json, text/event-stream"}
    )
    assert response.headers["content-type"].startswith("application/json")


def test_initialize_names_the_version_and_every_tool(broker):
    # An SRE Agent connector shows serverInfo; a client that reads only the instructions learns every tool.
    response = broker.client.post(
        "/api/mcp", json=INITIALIZE, headers={"Accept": "application/json, text/event-stream"}
    )

    result = response.json()["result"]
    assert result["serverInfo"]["name"] == "handoff-broker"
    assert result["serverInfo"]["version"] == handoff.__version__ != ""
    assert sorted(name for name in TOOL_NAMES if name not in result["instructions"]) == []


def test_openapi_describes_the_mcp_route_and_the_chain_view(broker):
    document = broker.client.get("/api/openapi.json").json()

    assert set(document["paths"]["/api/mcp"]) == {"post"}
    view = document["components"]["schemas"]["HandoffView"]["properties"]
    assert {"depth", "chain"} <= set(view)
    assert set(document["components"]["schemas"]["HandoffChain"]["properties"]) == {"parent", "children"}


def test_concurrent_sessions_are_served_independently(broker):
    # Each request runs its own session manager inside its own task group: parallel clients neither
    # share nor block each other's request.
    results: list[Any] = []

    async def one(index: int) -> None:
        async with Client(f"{broker.url}/api/mcp", mode="legacy") as client:
            listed = await client.call_tool("handoff_list_agents", {})
            missing = await client.call_tool("handoff_get", {"handoffId": f"not-an-id-{index}"})
            results.append((listed.is_error, missing.is_error, text_of(missing)))

    async def main() -> None:
        async with anyio.create_task_group() as group:
            for index in range(6):
                group.start_soon(one, index)

    anyio.run(main)

    assert len(results) == 6
    assert all(listed_error is False and missing_error is True for listed_error, missing_error, _ in results)
    assert {text.split("'")[1] for _, _, text in results} == {f"not-an-id-{i}" for i in range(6)}
