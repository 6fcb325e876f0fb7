"""Every bad input gets an RFC 9457 problem naming the field, and nothing is created or changed."""

from __future__ import annotations

import base64
import concurrent.futures
import json
import uuid

import httpx
import pytest

from tests.e2e.helpers import aimed_handoff_body, handback_body, handoff_body, threads_mentioning


def _problem(response, status):
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    body = response.json()
    assert (
        body["status"] == status and body["title"] and body["detail"] and body["type"].startswith("https://")
    )
    return body


def _fields(body):
    return [error["field"] for error in body.get("errors", [])]


def _valid():
    return handoff_body(None)


def _without(path):
    def change(body):
        parent = body
        for key in path[:-1]:
            parent = parent[key]
        del parent[path[-1]]

    return change


def _set(path, value):
    def change(body):
        parent = body
        for key in path[:-1]:
            parent = parent[key]
        parent[path[-1]] = value

    return change


CASES = [
    ("missing target", _without(["target"]), 422, "/target"),
    ("unknown target", _set(["target", "agent"], "nobody"), 422, "/target/agent"),
    ("unregistered source", _set(["source", "agent"], "stranger"), 422, "/source/agent"),
    ("to itself", _set(["target", "agent"], "ops"), 422, "/target/agent"),
    ("bad severity", _set(["context", "severity"], "P1"), 422, "/context/severity"),
    ("not an ARM id", _set(["context", "resources"], ["checkout-api"]), 422, "/context/resources/0"),
    (
        "row does not match columns",
        _set(
            ["context", "evidence"],
            [{"kind": "kql", "title": "t", "query": "q", "columns": ["a", "b"], "rows": [[1]]}],
        ),
        422,
        "/context/evidence/0/rows/0",
    ),
    ("bad intent", _set(["intent"], "panic"), 422, "/intent"),
    (
        "not a PagerDuty incident id",
        _set(["context", "incident"], {"id": "P1!not-an-incident", "platform": "pagerduty"}),
        422,
        "/context/incident/id",
    ),
    ("unknown parent", _set(["parentHandoffId"], str(uuid.uuid4())), 422, "/parentHandoffId"),
]


@pytest.mark.parametrize(("name", "change", "status", "field"), CASES, ids=[c[0] for c in CASES])
def test_bad_handoff_is_refused_naming_the_field_and_creates_nothing(
    broker, clean_fakes, name, change, status, field
):
    body = _valid()
    change(body)
    key = f"bad-{uuid.uuid4()}"
    problem = _problem(
        broker.client.post("/api/handoffs", json=body, headers={"Idempotency-Key": key}), status
    )
    assert field in _fields(problem) and field in problem["detail"]
    # nothing was stored under that key: the same key now creates a new handoff
    fresh = broker.client.post("/api/handoffs", json=_valid(), headers={"Idempotency-Key": key})
    assert fresh.status_code == 202


def test_malformed_json_is_400(broker):
    problem = _problem(
        broker.client.post(
            "/api/handoffs", content=b'{"source": ', headers={"content-type": "application/json"}
        ),
        400,
    )
    assert _fields(problem) == ["/"]


def test_body_over_256_kib_is_413_and_at_the_limit_is_accepted(broker, clean_fakes):
    body = _valid()
    body["context"]["evidence"] = [{"kind": "note", "content": "x" * 60_000} for _ in range(5)]
    big = broker.client.post("/api/handoffs", json=body)
    _problem(big, 413)
    # a body of exactly 262,144 bytes is accepted
    body["context"]["evidence"] = [{"kind": "note", "content": "y" * 60_000} for _ in range(4)]
    body["context"]["evidence"].append({"kind": "note", "content": "z"})
    pad = 262_144 - len(json.dumps(body).encode())
    body["context"]["evidence"][-1]["content"] = "z" * (1 + pad)
    raw = json.dumps(body).encode()
    assert len(raw) == 262_144
    accepted = broker.client.post("/api/handoffs", content=raw, headers={"content-type": "application/json"})
    assert accepted.status_code == 202, accepted.text
    view = broker.wait_status(accepted.json()["id"], "delivered", timeout=20)
    assert broker.client.get(f"/api/handoffs/{view['id']}").json()["context"]["evidence"][-1][
        "content"
    ] == "z" * (1 + pad)


def test_idempotency_key_replays_and_conflicts(broker, clean_fakes):
    key = f"k-{uuid.uuid4()}"
    body = _valid()
    first = broker.client.post("/api/handoffs", json=body, headers={"Idempotency-Key": key})
    assert first.status_code == 202
    # same body with keys in another order and the default intent spelled out: the same request
    reordered = {"context": body["context"], "target": body["target"], "source": body["source"]}
    replay = broker.client.post("/api/handoffs", json=reordered, headers={"Idempotency-Key": key})
    assert replay.status_code == 200 and replay.json()["id"] == first.json()["id"]
    changed = _valid()
    conflict = _problem(
        broker.client.post("/api/handoffs", json=changed, headers={"Idempotency-Key": key}), 409
    )
    assert "Idempotency-Key" in _fields(conflict)
    # the key is scoped to the source agent
    other_source = handoff_body(None, source="payments")
    assert (
        broker.client.post("/api/handoffs", json=other_source, headers={"Idempotency-Key": key}).status_code
        == 202
    )
    broker.wait_status(first.json()["id"], "delivered")
    assert len(threads_mentioning(clean_fakes.agents["checkout"], first.json()["id"])) == 1


def test_concurrent_requests_with_one_key_make_one_handoff(broker, clean_fakes):
    key = f"race-{uuid.uuid4()}"
    body = _valid()

    def post(_):
        with httpx.Client(base_url=broker.url, timeout=30) as client:
            return client.post("/api/handoffs", json=body, headers={"Idempotency-Key": key})

    with concurrent.futures.ThreadPoolExecutor(10) as pool:
        responses = list(pool.map(post, range(20)))
    assert sorted({r.status_code for r in responses}) in ([200, 202], [202])
    assert [r.status_code for r in responses].count(202) == 1
    ids = {r.json()["id"] for r in responses}
    assert len(ids) == 1
    handoff_id = ids.pop()
    broker.wait_status(handoff_id, "delivered", timeout=20)
    assert len(threads_mentioning(clean_fakes.agents["checkout"], handoff_id)) == 1


def test_handback_errors(broker, clean_fakes):
    _problem(broker.client.post(f"/api/handoffs/{uuid.uuid4()}/handback", json=handback_body()), 404)
    _problem(broker.client.get("/api/handoffs/not-a-uuid"), 404)
    checkout = clean_fakes.agents["checkout"]
    body, marker = aimed_handoff_body(None)
    checkout.inject("POST", "/api/v1/threads", delay=3.0, times=1, body_contains=marker)
    handoff_id = broker.client.post("/api/handoffs", json=body).json()["id"]
    early = _problem(broker.client.post(f"/api/handoffs/{handoff_id}/handback", json=handback_body()), 409)
    assert "accepted" in early["detail"]
    broker.wait_status(handoff_id, "delivered", timeout=20)
    wrong = _problem(
        broker.client.post(f"/api/handoffs/{handoff_id}/handback", json=handback_body("payments")), 403
    )
    assert _fields(wrong) == ["/agent"]
    bad = _problem(
        broker.client.post(f"/api/handoffs/{handoff_id}/handback", json=handback_body(outcome="fixed")), 422
    )
    assert _fields(bad) == ["/outcome"]
    # none of the refused hand-backs was stored
    assert broker.client.get(f"/api/handoffs/{handoff_id}").json()["handbacks"] == []


def test_links_query_needs_both_parameters(broker):
    problem = _problem(broker.client.get("/api/links", params={"agent": "ops"}), 400)
    assert _fields(problem) == ["threadId"]
    _problem(broker.client.get("/api/threads/nobody/t-1/links"), 404)


# Every POST route, with a body that would otherwise be read.
POST_ROUTES = [
    "/api/handoffs",
    "/api/handoffs/{id}/handback",
    "/api/handoffs/{id}/retry",
    "/api/handoffs/{id}/shared-memory/replay",
    "/api/alerts",
    "/api/webhooks/gh",
    "/api/a2a",
    "/api/mcp",
]
NOT_JSON = [
    "text/plain",
    "application/x-www-form-urlencoded",  # what curl -d sends without -H 'Content-Type: ...'
    "application/json; charset=latin-1",
    "multipart/form-data; boundary=x",
    None,
]


@pytest.mark.parametrize("content_type", NOT_JSON, ids=lambda c: c or "missing")
def test_a_body_not_labelled_json_is_415_on_every_post_route(broker, content_type):
    handoff_id = str(uuid.uuid4())
    body = json.dumps(_valid()).encode()
    headers = {"content-type": content_type} if content_type else {}
    for route in POST_ROUTES:
        request = broker.client.build_request(
            "POST", route.replace("{id}", handoff_id), content=body, headers=headers
        )
        assert request.headers.get("content-type") == content_type
        problem = _problem(broker.client.send(request), 415)
        assert _fields(problem) == ["Content-Type"], route
        assert "application/json" in problem["detail"], route


def test_json_with_a_charset_or_a_json_suffix_is_read(broker, clean_fakes):
    raw = json.dumps(_valid()).encode()
    for content_type in ("application/json; charset=utf-8", 'Application/JSON;charset="UTF-8"'):
        response = broker.client.post("/api/handoffs", content=raw, headers={"content-type": content_type})
        assert response.status_code == 202, (content_type, response.text)
    # A +json type is JSON too: the body is read (and here refused for what it says, not how it is labelled).
    suffixed = broker.client.post(
        "/api/handoffs", content=b'{"source": ', headers={"content-type": "application/merge-patch+json"}
    )
    _problem(suffixed, 400)


def test_a_post_without_a_body_needs_no_content_type(broker):
    # curl -X POST .../retry sends neither a body nor a Content-Type: not a 415.
    request = broker.client.build_request("POST", f"/api/handoffs/{uuid.uuid4()}/retry")
    assert "content-type" not in request.headers
    _problem(broker.client.send(request), 404)


LIST_CASES = [
    ({"status": "done"}, "status"),
    ({"top": "0"}, "top"),
    ({"top": "101"}, "top"),
    ({"top": "1e2"}, "top"),
    ({"since": "yesterday"}, "since"),
    ({"since": "2026-02-30T00:00:00Z"}, "since"),
    ({"source": "ops' or true or 'x"}, "source"),
    ({"target": "a/b"}, "target"),
    ({"alertRule": "r" * 300}, "alertRule"),
    ({"continuationToken": "not-a-token"}, "continuationToken"),
    ({"$filter": "PartitionKey ne ''"}, "$filter"),
]


@pytest.mark.parametrize(
    ("params", "field"), LIST_CASES, ids=[c[1] + ":" + str(c[0])[:30] for c in LIST_CASES]
)
def test_a_bad_list_parameter_is_400_naming_it(broker, params, field):
    body = _problem(broker.client.get("/api/handoffs", params=params), 400)
    assert _fields(body) == [field]


def test_a_forged_or_changed_continuation_token_is_400(broker, clean_fakes):
    for _ in range(2):
        broker.client.post("/api/handoffs", json=_valid()).raise_for_status()
    token = broker.client.get("/api/handoffs", params={"top": 1}).json()["continuationToken"]
    assert token
    body, signature = token.split(".")
    payload = base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)).decode()
    # The same signature over another position (an older floor, to read further back) is refused.
    moved = (
        base64.urlsafe_b64encode(payload.replace(payload[9:17], "19700101", 1).encode()).decode().rstrip("=")
    )
    for forged in (f"{moved}.{signature}", f"{body}.{signature[::-1]}", f"{body}.", token + "A"):
        problem = _problem(broker.client.get("/api/handoffs", params={"continuationToken": forged}), 400)
        assert _fields(problem) == ["continuationToken"]
    assert broker.client.get("/api/handoffs", params={"continuationToken": token}).status_code == 200
