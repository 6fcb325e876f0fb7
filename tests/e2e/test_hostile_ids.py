"""Ids that end up in agent URLs, attacked through the broker's HTTP API and MCP endpoint.

The broker calls agents with a managed identity that is SRE Agent Administrator on every one of
them, so a thread id that could steer a URL would let any caller act with that power. Every shape
below was accepted before ids were checked (202, or 500 on the links routes); now each is a 422 naming
the field, nothing is stored, the simulated agents see no request outside the intended paths, and an
approval waiting in another thread stays Pending.
"""

from __future__ import annotations

import http.client
import json
import re
import uuid
from typing import Any
from urllib.parse import quote

import pytest

from tests.e2e.helpers import aimed_handoff_body, handback_body, handoff_body, messages_mentioning
from tests.e2e.test_mcp import call, text_of

# Thread ids that would change an agent URL if they were put into it unencoded.
SHAPES: dict[str, str] = {
    "approve-another-thread": "../approvals/00000000-0000-4000-8000-000000000000/approve?x=",
    "dot-dot-path": "t/../../x",
    "query": "t?x=1",
    "nul": "t\x00x",
    "newline": "t\nx",
    "hash": "t#x",
    "question-mark": "t?",
    "space": "t x",
    "dot": ".",
    "dot-dot": "..",
    "encoded-dot-dot": "%2e%2e",
    "backslash": "t\\..\\x",
    "over-256": "a" * 300,
}
# On the links routes thread ids were not limited at all: 60k characters were a 500. An id that still fits
# the host's URL limit (8 KiB, as in Azure) reaches the broker and is a 422; longer ones are refused by
# the host with 414 (below).
LINK_SHAPES = {**SHAPES, "5k": "a" * 5_000}
# What the broker may call on an SRE Agent: threads, one thread, its messages, trigger webhooks.
INTENDED = re.compile(
    r"^/api/v1/(threads(/[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}(/messages)?)?"
    r"|httptriggers/trigger/[0-9a-f]+)$"
)
NO_QUERY = {"POST"}
READ_QUERY_KEYS = {"$orderby", "$top", "orderby", "top"}


def _problem(response: Any, status: int = 422) -> dict[str, Any]:
    assert response.status_code == status, response.text[:500]
    assert response.headers["content-type"].startswith("application/problem+json")
    body = response.json()
    assert body["status"] == status and body["title"] and body["detail"]
    return body


def _fields(problem: dict[str, Any]) -> list[str]:
    return [error["field"] for error in problem.get("errors", [])]


def _stray_requests(fakes: Any, since: dict[str, int]) -> list[str]:
    """Requests the simulated agents received since ``since`` that are outside the intended paths."""
    stray = []
    for name, agent in fakes.agents.items():
        for request in agent.requests()[since[name] :]:
            path, query = request["path"], set(request["query"])
            if (
                not INTENDED.match(path)
                or (request["method"] in NO_QUERY and query)
                or query - READ_QUERY_KEYS
            ):
                stray.append(f"{name}: {request['method']} {path} {sorted(query)}")
    return stray


def _mark(fakes: Any) -> dict[str, int]:
    return {name: len(agent.requests()) for name, agent in fakes.agents.items()}


def _sentinel(broker: Any, fakes: Any) -> None:
    """Hand off from a real ops thread and wait until the cross-link is posted: by then the delivery
    queue has run everything queued before it."""
    ops = fakes.agents["ops"]
    thread = ops.create_thread("Ops: sentinel")["id"]
    handoff_id = broker.client.post("/api/handoffs", json=handoff_body(thread)).json()["id"]
    broker.wait_for(handoff_id, lambda _: bool(messages_mentioning(ops, thread, handoff_id)), timeout=20)


def _approval_status(agent: Any, thread_id: str, approval_id: str) -> str:
    for message in agent.messages(thread_id):
        approval = message.get("approval") or {}
        if approval.get("id") == approval_id:
            return str(approval["status"])
    raise AssertionError(f"approval {approval_id} not found")


@pytest.fixture(scope="module", autouse=True)
def module_start(fakes) -> dict[str, int]:
    """How many requests each simulated agent had received when this module started."""
    return _mark(fakes)


@pytest.mark.attack("urls")
def test_a_thread_id_cannot_approve_a_pending_approval_in_another_thread(broker, clean_fakes):
    ops = clean_fakes.agents["ops"]
    victim = ops.create_thread("Ops: remediation waiting for a human")["id"]
    approval_id = ops.add_approval(victim, "Restart checkout-api in production")["approval"]["id"]
    since = _mark(clean_fakes)

    body = handoff_body(f"../approvals/{approval_id}/approve?x=")
    problem = _problem(broker.client.post("/api/handoffs", json=body))

    assert _fields(problem) == ["/source/threadId"] and "/source/threadId" in problem["detail"]
    _sentinel(broker, clean_fakes)
    assert _approval_status(ops, victim, approval_id) == "Pending"
    assert _stray_requests(clean_fakes, since) == []


@pytest.mark.attack("urls")
@pytest.mark.parametrize("shape", SHAPES.values(), ids=SHAPES.keys())
def test_hostile_source_thread_ids_are_refused_and_nothing_is_stored(broker, clean_fakes, shape):
    key = f"hostile-{uuid.uuid4()}"
    problem = _problem(
        broker.client.post("/api/handoffs", json=handoff_body(shape), headers={"Idempotency-Key": key})
    )
    assert _fields(problem) == ["/source/threadId"]
    assert "one URL path segment" in problem["errors"][0]["message"]
    # nothing was stored under the key: the same key now creates a handoff
    fresh = broker.client.post("/api/handoffs", json=handoff_body(None), headers={"Idempotency-Key": key})
    assert fresh.status_code == 202, fresh.text


@pytest.fixture(scope="module")
def delivered(broker, fakes) -> str:
    """A handoff delivered to checkout (its thread exists), for the hand-back cases."""
    thread = fakes.agents["ops"].create_thread("Ops: hand-back target")["id"]
    handoff_id = broker.client.post("/api/handoffs", json=handoff_body(thread)).json()["id"]
    broker.wait_status(handoff_id, "delivered", timeout=20)
    return handoff_id


@pytest.mark.attack("urls")
@pytest.mark.parametrize("shape", SHAPES.values(), ids=SHAPES.keys())
def test_hostile_hand_back_thread_ids_are_refused_and_nothing_is_stored(
    broker, clean_fakes, delivered, shape
):
    problem = _problem(
        broker.client.post(f"/api/handoffs/{delivered}/handback", json=handback_body(thread_id=shape))
    )
    assert _fields(problem) == ["/threadId"]
    view = broker.client.get(f"/api/handoffs/{delivered}").json()
    assert view["status"] == "delivered" and view["handbacks"] == []


ROUTE_SHAPES = {
    name: shape for name, shape in LINK_SHAPES.items() if "/" not in shape and shape not in (".", "..")
}
ROUTE_SHAPES["encoded-dot-dot-path"] = "%2E%2E"  # sent as is: the host decodes it to ".."


@pytest.mark.attack("urls")
@pytest.mark.parametrize("shape", ROUTE_SHAPES.values(), ids=ROUTE_SHAPES.keys())
def test_hostile_thread_ids_on_the_links_route_are_422(broker, shape):
    segment = shape if shape == "%2E%2E" else quote(shape, safe="")
    problem = _problem(broker.client.get(f"/api/threads/ops/{segment}/links"))
    assert _fields(problem) == ["threadId"]


@pytest.mark.attack("urls")
@pytest.mark.parametrize("shape", LINK_SHAPES.values(), ids=LINK_SHAPES.keys())
def test_hostile_thread_ids_on_the_links_query_are_422(broker, shape):
    problem = _problem(broker.client.get("/api/links", params={"agent": "ops", "threadId": shape}))
    assert _fields(problem) == ["threadId"] and "threadId" in problem["detail"]


@pytest.mark.attack("urls")
@pytest.mark.parametrize("where", ["route", "query"])
def test_a_100k_character_thread_id_on_the_links_routes_is_4xx_not_500(broker, where):
    """Longer than the test client's URL limit, so sent with the standard library's client. Longer than the
    host's request-line limit too, so the host answers 414 before the broker runs (as Azure's front end
    does)."""
    thread_id = "a" * 100_000
    path = (
        f"/api/threads/ops/{thread_id}/links"
        if where == "route"
        else f"/api/links?agent=ops&threadId={thread_id}"
    )
    connection = http.client.HTTPConnection("127.0.0.1", broker.port, timeout=30)
    try:
        connection.request("GET", path)
        response = connection.getresponse()
        status, content_type, body = response.status, response.getheader("content-type", ""), response.read()
    finally:
        connection.close()
    assert status == 414, body[:300]
    assert content_type.startswith("application/problem+json")
    assert json.loads(body)["status"] == 414


MCP_SHAPES = {name: SHAPES[name] for name in ("approve-another-thread", "dot-dot-path", "query", "dot-dot")}


@pytest.mark.attack("urls")
@pytest.mark.parametrize("shape", MCP_SHAPES.values(), ids=MCP_SHAPES.keys())
def test_hostile_thread_ids_in_mcp_tools_are_tool_errors_naming_the_field(broker, clean_fakes, shape):
    links = call(broker, "handoff_links", {"agent": "ops", "threadId": shape})
    assert links.is_error and "/threadId" in text_of(links), text_of(links)
    created = call(broker, "handoff_create", handoff_body(shape))
    assert created.is_error and "/source/threadId" in text_of(created), text_of(created)


@pytest.mark.attack("urls")
def test_a_hostile_thread_id_answered_by_an_agent_fails_the_handoff_instead_of_being_used(
    broker, clean_fakes
):
    checkout = clean_fakes.agents["checkout"]
    ops = clean_fakes.agents["ops"]
    source = ops.create_thread("Ops: handing off to a compromised agent")["id"]
    request, marker = aimed_handoff_body(source)
    hostile = {"id": "../approvals/x/approve?y="}
    checkout.inject("POST", "/api/v1/threads", status=200, body=hostile, times=1, body_contains=marker)
    since = _mark(clean_fakes)

    handoff_id = broker.client.post("/api/handoffs", json=request).json()["id"]

    failed = broker.wait_status(handoff_id, "failed", timeout=20)
    assert "unusable thread id" in failed["lastError"]
    assert failed["target"].get("threadId") is None
    assert "deliveryFailed" in broker.audit_types(handoff_id)
    assert broker.client.get(f"/api/threads/ops/{source}/links").json()["links"] == []
    _sentinel(broker, clean_fakes)
    assert _stray_requests(clean_fakes, since) == []


@pytest.mark.attack("urls")
def test_the_simulated_agents_saw_no_request_outside_the_intended_paths(broker, fakes, module_start):
    """After every attack above (and the work they queued, if any) the request logs are clean."""
    _sentinel(broker, fakes)
    assert _stray_requests(fakes, module_start) == []
