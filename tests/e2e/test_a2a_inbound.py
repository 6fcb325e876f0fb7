"""A partner hands a task to an SRE Agent through the broker's A2A endpoint, with a2a-sdk's client."""

from __future__ import annotations

import asyncio
import time
import uuid
from typing import Any

import httpx
import pytest
from a2a.client import A2ACardResolver, ClientConfig, ClientFactory
from a2a.types import GetTaskRequest, Message, Part, Role, SendMessageRequest, TaskState
from a2a.utils.errors import InvalidParamsError, TaskNotFoundError
from google.protobuf import struct_pb2
from google.protobuf.json_format import MessageToDict

from tests.e2e.helpers import handback_body, handoff_body, threads_mentioning

SCHEMAS = "https://schemas.handoff-broker.dev/handoff-context/v1/"
EXTENSION = f"{SCHEMAS}a2a-extension"


def _message(
    data: dict[str, Any], *, message_id: str | None = None, context_id: str = ""
) -> SendMessageRequest:
    value = struct_pb2.Value()
    value.struct_value.update(data)
    return SendMessageRequest(
        message=Message(
            message_id=message_id or str(uuid.uuid4()),
            context_id=context_id,
            role=Role.ROLE_USER,
            parts=[Part(data=value, media_type="application/json")],
        )
    )


async def _with_client(broker_url: str, work: Any) -> Any:
    async with httpx.AsyncClient(timeout=30) as http:
        card = await A2ACardResolver(http, f"{broker_url}/api/a2a").get_agent_card()
        client = ClientFactory(ClientConfig(streaming=False, polling=True, httpx_client=http)).create(card)
        return await work(client, card)


async def _send(client: Any, request: SendMessageRequest) -> Any:
    async for event in client.send_message(request):
        return event.task
    raise AssertionError("no answer")


def test_agent_card_points_back_at_the_endpoint(broker):
    async def work(_client, card):
        return card

    card = asyncio.run(_with_client(broker.url, work))

    interface = card.supported_interfaces[0]
    assert (interface.url, interface.protocol_binding, interface.protocol_version) == (
        f"{broker.url}/api/a2a",
        "JSONRPC",
        "1.0",
    )
    assert "handoff-to-checkout" in {skill.id for skill in card.skills}
    assert "handoff-to-partner" not in {skill.id for skill in card.skills}


def test_partner_hands_a_task_to_an_sre_agent_and_reads_it_until_completed(broker, clean_fakes):
    checkout = clean_fakes.agents["checkout"]
    body = handoff_body(None, source="partner", target="checkout")
    message_id = str(uuid.uuid4())

    async def send(client, _card):
        first = await _send(client, _message(body, message_id=message_id, context_id="partner-ctx-7"))
        again = await _send(client, _message(body, message_id=message_id, context_id="partner-ctx-7"))
        return first, again

    task, replay = asyncio.run(_with_client(broker.url, send))

    handoff_id = task.id
    assert replay.id == handoff_id  # the message id is the idempotency key
    assert task.context_id == "partner-ctx-7"
    assert task.status.state in (TaskState.TASK_STATE_SUBMITTED, TaskState.TASK_STATE_WORKING)
    view = broker.wait_for(handoff_id, lambda b: b["status"] == "delivered" and b["target"].get("threadId"))
    assert view["correlationId"] == "partner-ctx-7"
    assert len(threads_mentioning(checkout, handoff_id)) == 1
    thread_id = view["target"]["threadId"]

    async def working(client, _card):
        return await client.get_task(GetTaskRequest(id=handoff_id))

    assert asyncio.run(_with_client(broker.url, working)).status.state == TaskState.TASK_STATE_WORKING

    back = broker.client.post(f"/api/handoffs/{handoff_id}/handback", json=handback_body(thread_id=thread_id))
    assert back.status_code == 202, back.text

    async def until_completed(client, _card):
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            current = await client.get_task(GetTaskRequest(id=handoff_id))
            if current.status.state == TaskState.TASK_STATE_COMPLETED:
                return current
            await asyncio.sleep(0.1)
        raise AssertionError(f"task not completed: {current}")

    completed = asyncio.run(_with_client(broker.url, until_completed))
    assert completed.context_id == "partner-ctx-7"
    artifact = completed.artifacts[0]
    data = next(MessageToDict(part.data) for part in artifact.parts if part.HasField("data"))
    assert (data["outcome"], data["rootCause"]) == ("rootCauseFound", handback_body()["rootCause"])
    assert any("Max Pool Size" in part.text for part in artifact.parts if part.HasField("text"))
    # the partner has no SRE Agent thread: nothing was posted anywhere for it
    assert broker.wait_status(handoff_id, "handedBack")["handbacks"][0]["delivery"] == "noSourceThread"


def test_bad_handoff_in_a_message_is_refused_naming_the_field(broker, clean_fakes):
    body = handoff_body(None, source="partner", target="checkout")
    body["context"]["severity"] = "urgent"
    before = len(clean_fakes.agents["checkout"].threads())

    async def send(client, _card):
        with pytest.raises(InvalidParamsError) as refused:
            await _send(client, _message(body))
        with pytest.raises(TaskNotFoundError):
            await client.get_task(GetTaskRequest(id=str(uuid.uuid4())))
        return refused.value

    error = asyncio.run(_with_client(broker.url, send))

    fields = [item["field"] for item in error.data["errors"]]
    assert fields == ["/message/parts/0/data/context/severity"]
    assert len(clean_fakes.agents["checkout"].threads()) == before


def test_message_without_a_handoff_is_refused(broker):
    request = SendMessageRequest(
        message=Message(
            message_id=str(uuid.uuid4()), role=Role.ROLE_USER, parts=[Part(text="please investigate")]
        )
    )

    async def send(client, _card):
        with pytest.raises(InvalidParamsError) as refused:
            await _send(client, request)
        return refused.value

    error = asyncio.run(_with_client(broker.url, send))
    assert error.data["errors"][0]["field"] == "/message/parts"


def test_a2a_source_agent_cannot_claim_a_thread(broker):
    body = handoff_body("some-thread", source="partner", target="checkout")

    response = broker.client.post("/api/handoffs", json=body)

    assert response.status_code == 422
    assert response.json()["errors"][0]["field"] == "/source/threadId"


# ---------------------------------------------------------------- the contract's A2A extension


def _rpc(broker, params: dict, extensions: str | None) -> httpx.Response:
    headers = {"A2A-Version": "1.0", **({"A2A-Extensions": extensions} if extensions else {})}
    body = {"jsonrpc": "2.0", "id": 1, "method": "SendMessage", "params": params}
    return broker.client.post("/api/a2a", json=body, headers=headers)


def _contract_message(data: dict, *, tagged: bool = True) -> dict:
    part: dict[str, Any] = {"data": data, "mediaType": "application/json"}
    if tagged:
        part["metadata"] = {EXTENSION: {"schema": f"{SCHEMAS}handoff-request.json"}}
    return {"message": {"messageId": str(uuid.uuid4()), "role": "ROLE_USER", "parts": [{"text": "hi"}, part]}}


def test_the_card_declares_the_contract_extension(broker):
    card = broker.client.get("/api/a2a/.well-known/agent-card.json").json()
    (extension,) = card["capabilities"]["extensions"]
    assert extension["uri"] == EXTENSION and extension.get("required", False) is False
    served = extension["params"]["servedAt"]["handoff-request"]
    assert served == f"{broker.url}/api/schemas/handoff-context/v1/handoff-request.json"
    assert (
        broker.client.get(served.removeprefix(broker.url)).json()["$id"] == f"{SCHEMAS}handoff-request.json"
    )


def test_with_the_extension_a_tagged_request_is_accepted_and_the_header_echoed(broker, clean_fakes):
    body = handoff_body(None, source="partner", target="checkout")

    response = _rpc(broker, _contract_message(body), f"https://other.example/ext, {EXTENSION}")

    assert response.status_code == 200, response.text
    assert response.headers["A2A-Extensions"] == EXTENSION
    task = response.json()["result"]["task"]
    view = broker.wait_for(task["id"], lambda b: b["status"] == "delivered")
    assert view["context"]["title"] == body["context"]["title"]


@pytest.mark.parametrize(
    ("change", "field"),
    [
        (lambda b: b["context"].pop("title"), "/context/title"),
        (lambda b: b["context"].update(severity="urgent"), "/context/severity"),
        (lambda b: b["context"].update(title=7), "/context/title"),
        (lambda b: b["context"]["evidence"].append({"kind": "trace"}), "/context/evidence/3"),
    ],
)
def test_with_the_extension_a_bad_part_gets_the_rest_problem(broker, change, field):
    body = handoff_body(None, source="partner", target="checkout")
    change(body)

    response = _rpc(broker, _contract_message(body), EXTENSION)
    rest = broker.client.post("/api/handoffs", json=body)

    assert response.headers["A2A-Extensions"] == EXTENSION
    error = response.json()["error"]
    assert error["code"] == -32602  # InvalidParams, as for any bad A2A input
    assert rest.status_code == 422
    # The SDK carries the error's data as the metadata of a google.rpc.ErrorInfo detail.
    problem = next(d["metadata"] for d in error["data"] if d["@type"].endswith("google.rpc.ErrorInfo"))
    rest_problem = {k: v for k, v in rest.json().items() if k != "instance"}  # the URL called differs
    assert problem == rest_problem  # the very problem details, field names and all
    assert problem["errors"][0]["field"].startswith(field)


def test_without_the_extension_nothing_is_echoed_and_fields_point_into_the_message(broker):
    body = handoff_body(None, source="partner", target="checkout")
    body["context"]["severity"] = "urgent"

    response = _rpc(broker, _contract_message(body, tagged=False), None)

    assert "A2A-Extensions" not in response.headers
    problem = next(d["metadata"] for d in response.json()["error"]["data"] if "metadata" in d)
    assert [e["field"] for e in problem["errors"]] == ["/message/parts/1/data/context/severity"]
