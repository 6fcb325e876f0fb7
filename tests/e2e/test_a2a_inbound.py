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
