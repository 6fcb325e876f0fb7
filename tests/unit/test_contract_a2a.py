"""The handoff contract's A2A extension: one URI, parts tagged with it, the broker's card declaring it,
inbound data parts validated as REST bodies are, outbound messages carrying the contract's request, and
hand-backs read from tagged artifacts."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import pytest
from a2a.types import Message, Part, Role
from a2a.utils.errors import InvalidParamsError
from google.protobuf import struct_pb2
from google.protobuf.json_format import MessageToDict

from handoff.domain.contract import (
    A2A_EXTENSION_URI,
    BASE_URI,
    SCHEMA_NAMES,
    document,
    extension_metadata,
    extension_params,
    tagged_document,
)
from handoff.domain.errors import Problem
from handoff.domain.intake import parse_body
from handoff.domain.models import HandoffRequest
from handoff.domain.records import RemoteArtifact, RemoteTask
from handoff.domain.registry import Registry
from handoff.entrypoints.a2a_server import (
    activated_extensions,
    build_agent_card,
    echo_extensions,
    handoff_request_of,
)
from handoff.services.a2a_followup import handback_from_task
from handoff.settings import Settings
from tests.e2e.helpers import contract_errors
from tests.unit.conftest import World, handoff_body

RID = (
    "/subscriptions/00000000-0000-0000-0000-000000000000/resourceGroups/rg/providers/Microsoft.App/agents/ops"
)

# ---------------------------------------------------------------- the URI and the tags


def test_the_extension_uri_lives_under_the_schemas_base():
    assert f"{BASE_URI}a2a-extension" == A2A_EXTENSION_URI
    assert A2A_EXTENSION_URI.startswith("https://")


@pytest.mark.parametrize("name", sorted(SCHEMA_NAMES))
def test_a_tag_names_the_document_it_was_made_for(name):
    metadata = extension_metadata(name)
    assert metadata == {A2A_EXTENSION_URI: {"schema": document(name).uri}}
    assert tagged_document(metadata) == name


@pytest.mark.parametrize(
    "metadata",
    [
        None,
        {},
        {"schema": document("handoff-request").uri},  # not under the extension's key
        {A2A_EXTENSION_URI: document("handoff-request").uri},  # not an object
        {A2A_EXTENSION_URI: {"schema": "https://example.com/handoff-request.json"}},
        {A2A_EXTENSION_URI: {"schema": f"{BASE_URI}no-such-document.json"}},
        {A2A_EXTENSION_URI: {"schema": f"{BASE_URI}../../etc/passwd.json"}},
        {A2A_EXTENSION_URI: {"schema": 7}},
    ],
)
def test_anything_else_is_not_a_tag(metadata):
    assert tagged_document(metadata) is None


def test_the_card_params_name_every_schema_by_id_and_where_it_is_served():
    params = extension_params("https://broker.example/api/schemas/handoff-context/v1/")
    assert params["schemaId"] == "handoffContext" and params["schemaVersion"] == "1.0"
    assert params["schemas"]["handoff-request"] == document("handoff-request").uri
    assert params["servedAt"]["handback-request"] == (
        "https://broker.example/api/schemas/handoff-context/v1/handback-request.json"
    )
    assert set(params["schemas"]) == set(params["servedAt"]) == SCHEMA_NAMES


def test_the_broker_card_declares_the_extension_as_optional():
    settings = Settings(public_base_url="https://broker.example")
    card = build_agent_card(settings, Registry.from_data({"agents": [{"name": "ops", "resourceId": RID}]}))
    (extension,) = card.capabilities.extensions
    assert (extension.uri, extension.required) == (A2A_EXTENSION_URI, False)
    assert "handoffContext" in extension.description
    params = MessageToDict(extension.params)
    assert params["servedAt"]["handoff-request"] == (
        "https://broker.example/api/schemas/handoff-context/v1/handoff-request.json"
    )


# ---------------------------------------------------------------- inbound


def _value(data: dict[str, Any]) -> struct_pb2.Value:
    value = struct_pb2.Value()
    value.struct_value.update(data)
    return value


def _part(data: dict[str, Any], tag: str | None = None) -> Part:
    part = Part(data=_value(data), media_type="application/json")
    if tag:
        part.metadata.update(extension_metadata(tag))
    return part


def _message(*parts: Part, context_id: str = "") -> Message:
    return Message(message_id=str(uuid.uuid4()), context_id=context_id, role=Role.ROLE_USER, parts=parts)


def _body(**changes: Any) -> dict[str, Any]:
    body = handoff_body(None, source="partner", target="checkout")
    body["context"].update(changes)
    return body


def _rest_problem(body: dict[str, Any]) -> dict[str, Any]:
    import json

    with pytest.raises(Problem) as refused:
        parse_body(json.dumps(body).encode(), HandoffRequest)
    return refused.value.to_json()


@pytest.mark.parametrize(
    "changes",
    [{"severity": "urgent"}, {"title": 5}, {"evidence": [{"kind": "trace"}]}, {"summary": "x" * 100_000}],
)
def test_with_the_extension_a_bad_part_gets_the_very_problem_rest_answers(changes):
    body = _body(**changes)
    with pytest.raises(InvalidParamsError) as refused:
        handoff_request_of(_message(Part(text="hello"), _part(body, "handoff-request")), contract=True)
    assert refused.value.data == _rest_problem(body)
    assert refused.value.data["status"] == 422 and refused.value.data["errors"][0]["field"].startswith("/")


def test_without_the_extension_fields_are_pointers_into_the_message():
    body = _body(severity="urgent")
    with pytest.raises(InvalidParamsError) as refused:
        handoff_request_of(_message(Part(text="hello"), _part(body)), contract=False)
    assert [e["field"] for e in refused.value.data["errors"]] == ["/message/parts/1/data/context/severity"]


def test_with_the_extension_the_tagged_part_wins_over_an_earlier_untagged_one():
    other = {"note": "partner's own payload"}
    body = _body()
    request = handoff_request_of(
        _message(_part(other), _part(body, "handoff-request"), context_id="ctx-1"), contract=True
    )
    assert request.context.title == body["context"]["title"]
    assert request.correlation_id == "ctx-1"
    # without the extension the first data part is the request, as before
    with pytest.raises(InvalidParamsError):
        handoff_request_of(_message(_part(other), _part(body, "handoff-request")), contract=False)


def test_with_the_extension_a_message_without_a_data_part_names_the_parts():
    with pytest.raises(InvalidParamsError) as refused:
        handoff_request_of(_message(Part(text="please look")), contract=True)
    assert refused.value.data["errors"] == [
        {"field": "/message/parts", "message": "no data part with a JSON object"}
    ]


def test_only_the_contract_extension_is_activated():
    assert activated_extensions({A2A_EXTENSION_URI, "https://other.example/ext"}) == [A2A_EXTENSION_URI]
    assert activated_extensions({"https://other.example/ext"}) == []


def _asgi_call(app: Any, headers: list[tuple[bytes, bytes]]) -> list[tuple[bytes, bytes]]:
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    asyncio.run(app({"type": "http", "headers": headers}, receive, send))
    return sent[0]["headers"]


def test_the_answer_echoes_the_activated_extension_only():
    async def inner(scope: Any, receive: Any, send: Any) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": [(b"x-inner", b"1")]})
        await send({"type": "http.response.body", "body": b"{}"})

    app = echo_extensions(inner)
    asked = f"https://other.example/ext, {A2A_EXTENSION_URI}".encode()
    assert _asgi_call(app, [(b"a2a-extensions", asked)]) == [
        (b"x-inner", b"1"),
        (b"a2a-extensions", A2A_EXTENSION_URI.encode()),
    ]
    assert _asgi_call(app, [(b"a2a-extensions", b"https://other.example/ext")]) == [(b"x-inner", b"1")]
    assert _asgi_call(app, []) == [(b"x-inner", b"1")]


# ---------------------------------------------------------------- outbound and hand-backs


def test_an_a2a_target_also_gets_the_handoff_as_the_contracts_request(world: World) -> None:
    view, _ = world.accept(handoff_body(world.source_thread(), target="partner", correlationId="inc-9"))
    world.step()
    (sent,) = world.remote.sent
    assert sent.contract is not None
    assert contract_errors("handoff-request", sent.contract) == []
    assert (sent.contract["schemaId"], sent.contract["schemaVersion"]) == ("handoffContext", "1.0")
    assert sent.contract["target"] == {"agent": "partner"}
    assert sent.contract["correlationId"] == "inc-9"
    assert sent.contract["context"] == sent.data["context"]
    assert view.id == sent.data["handoffId"]


def _task(*artifacts: RemoteArtifact) -> RemoteTask:
    return RemoteTask(task_id="t", context_id="c", state="COMPLETED", artifacts=artifacts)


def test_a_tagged_handback_is_read_before_an_untagged_one():
    untagged = {"outcome": "reported", "summary": "draft"}
    contract = {
        "schemaId": "handoffContext",
        "schemaVersion": "1.0",
        "agent": "someone-else",
        "threadId": "not-theirs",
        "outcome": "rootCauseFound",
        "summary": "TLS handshakes",
        "rootCause": "session resumption off",
        "recommendedActions": ["turn it on"],
    }
    request = handback_from_task(
        _task(RemoteArtifact("a", "text", untagged), RemoteArtifact("b", "", None, contract)), "partner"
    )
    assert (request.agent, request.thread_id) == ("partner", None)  # the target's own, whatever it said
    assert (request.outcome, request.root_cause, request.recommended_actions) == (
        "rootCauseFound",
        "session resumption off",
        ["turn it on"],
    )


def test_a_tagged_handback_that_breaks_the_contract_falls_back_to_the_others():
    bad = {"outcome": "solved-it", "summary": "x"}
    request = handback_from_task(_task(RemoteArtifact("a", "Found it", {"outcome": "mitigated"}, bad)), "p")
    assert (request.outcome, request.summary) == ("mitigated", "Found it")


def test_a_contract_handback_through_the_follow_up_keeps_its_fields(world: World) -> None:
    view, _ = world.accept(handoff_body(world.source_thread(), target="partner"))
    world.step()
    task = world.remote.only_task()
    contract = {
        "agent": "partner",
        "outcome": "mitigated",
        "summary": "Rolled back",
        "rootCause": "bad deploy",
    }
    world.remote.advance(task.task_id, "COMPLETED", text="See data", contract=contract)
    world.run()
    record = world.store.get(view.id)
    assert record is not None
    (handback,) = record.handbacks
    assert (handback.request.outcome, handback.request.root_cause) == ("mitigated", "bad deploy")
    assert record.state.status == "handedBack"
