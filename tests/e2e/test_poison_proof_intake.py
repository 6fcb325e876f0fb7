"""Poison-proof intake, through HTTP against the broker: JSON nested too deeply, text storage cannot keep
and numbers that would not be stored as sent are refused at the door with a 4xx naming the field, on
every entrypoint, and nothing stored is created or changed; what is accepted at the limits can always be
read, delivered, handed back, audited and swept."""

from __future__ import annotations

import http.client
import json
import time
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from azure.storage.queue import QueueClient, TextBase64DecodePolicy, TextBase64EncodePolicy

from handoff.adapters.azure_storage.clients import StorageClients
from handoff.adapters.azure_storage.handoffs import TableHandoffStore
from handoff.adapters.azure_storage.queues import delivery_queue
from handoff.domain.intake import MAX_BODY_BYTES, MAX_DEPTH
from handoff.domain.registry import Registry
from handoff.services.handoffs import build_handoffs
from handoff.settings import DELIVERY_POISON_QUEUE, DELIVERY_QUEUE, HISTORY_TABLE, Settings
from tests.e2e.helpers import handback_body, handoff_body, messages_mentioning, threads_mentioning

JSON = {"content-type": "application/json"}
MCP = {"content-type": "application/json", "accept": "application/json, text/event-stream"}
A2A = {"content-type": "application/json", "A2A-Version": "1.0"}
# Where a data evidence item's "data" object sits in a handoff body: root, context, evidence, item, data.
DATA_LEVEL = 5


def _problem(response: Any, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.text[:2000]
    assert response.headers["content-type"].startswith("application/problem+json"), response.text[:500]
    body = response.json()
    assert body["status"] == status and body["title"] and body["detail"]
    return body


def _fields(problem: dict[str, Any]) -> list[str]:
    return [error["field"] for error in problem.get("errors", [])]


def _arrays(depth: int) -> str:
    return "[" * depth + "]" * depth


def _with_data(body: dict[str, Any], data_json: str) -> str:
    """``body`` with one more evidence item whose ``data`` is the raw JSON ``data_json``."""
    body["context"]["evidence"].append({"kind": "data", "title": "raw", "data": "@DATA@"})
    return json.dumps(body, ensure_ascii=False).replace('"@DATA@"', data_json)


def _deep_data(total_depth: int) -> str:
    """A data object that makes the handoff body ``total_depth`` deep."""
    return '{"x": ' + _arrays(total_depth - DATA_LEVEL) + "}"


def _nothing_stored_under(broker: Any, key: str) -> None:
    fresh = broker.client.post("/api/handoffs", json=handoff_body(None), headers={"Idempotency-Key": key})
    assert fresh.status_code == 202, fresh.text


# ---------------------------------------------------------------- depth


@pytest.mark.attack("intake")
@pytest.mark.parametrize("depth", [MAX_DEPTH + 1, 200, 10_000], ids=["limit+1", "200", "10000"])
def test_deeply_nested_handoff_is_refused_and_stores_nothing(broker, clean_fakes, depth):
    key = f"deep-{uuid.uuid4()}"
    raw = _with_data(handoff_body(None), _deep_data(depth))
    problem = _problem(
        broker.client.post("/api/handoffs", content=raw, headers={**JSON, "Idempotency-Key": key}), 422
    )
    assert _fields(problem) == ["/"]
    assert f"nested deeper than {MAX_DEPTH} levels" in problem["detail"]
    _nothing_stored_under(broker, key)


@pytest.mark.attack("intake")
def test_deeply_nested_hand_back_is_refused_and_changes_nothing(broker, clean_fakes):
    handoff_id = broker.client.post("/api/handoffs", json=handoff_body(None)).json()["id"]
    broker.wait_status(handoff_id, "delivered", timeout=20)
    body = handback_body()
    body["evidence"] = [{"kind": "data", "title": "raw", "data": "@DATA@"}]
    raw = json.dumps(body).replace('"@DATA@"', '{"x": ' + _arrays(10_000) + "}")
    problem = _problem(
        broker.client.post(f"/api/handoffs/{handoff_id}/handback", content=raw, headers=JSON), 422
    )
    assert _fields(problem) == ["/"]
    view = broker.client.get(f"/api/handoffs/{handoff_id}").json()
    assert (view["status"], view["handbacks"]) == ("delivered", [])


@pytest.mark.attack("intake")
def test_every_json_entrypoint_refuses_deep_nesting_with_a_4xx_problem(broker, clean_fakes):
    deep = _arrays(10_000)
    handoff_id = broker.client.post("/api/handoffs", json=handoff_body(None)).json()["id"]
    # MCP and A2A: checked before their SDKs parse the body.
    rpc = (
        '{"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {"name": "handoff_get", "arguments": '
    )
    assert _fields(_problem(broker.client.post("/api/mcp", content=rpc + deep + "}}", headers=MCP), 422)) == [
        "/"
    ]
    send = '{"jsonrpc": "2.0", "id": 1, "method": "SendMessage", "params": {"message": '
    assert _fields(
        _problem(broker.client.post("/api/a2a", content=send + deep + "}}", headers=A2A), 422)
    ) == ["/"]
    # Azure Monitor alerts and the shared-memory replay body.
    alert = '{"schemaId": "azureMonitorCommonAlertSchema", "data": ' + deep + "}"
    assert _fields(_problem(broker.client.post("/api/alerts", content=alert, headers=JSON), 400)) == ["/"]
    replay = broker.client.post(
        f"/api/handoffs/{handoff_id}/shared-memory/replay", content=deep, headers=JSON
    )
    assert _fields(_problem(replay, 400)) == ["/"]


@pytest.mark.attack("intake")
def test_documents_inside_mcp_and_a2a_bodies_have_the_same_limit(broker, clean_fakes):
    checkout = clean_fakes.agents["checkout"]
    # Within the envelope's allowance, so the SDKs parse it; the handoff inside is one level too deep.
    too_deep = json.loads(_with_data(handoff_body(None), _deep_data(MAX_DEPTH + 1)))
    title = too_deep["context"]["title"]
    mcp = {
        "jsonrpc": "2.0",
        "id": 7,
        "method": "tools/call",
        "params": {"name": "handoff_create", "arguments": too_deep},
    }
    answer = broker.client.post("/api/mcp", json=mcp, headers=MCP)
    assert answer.status_code == 200, answer.text
    result = answer.json()["result"]
    assert result["isError"] is True
    assert result["structuredContent"]["status"] == 422
    assert [e["field"] for e in result["structuredContent"]["errors"]] == ["/"]

    message = {"messageId": str(uuid.uuid4()), "role": "ROLE_USER", "parts": [{"data": too_deep}]}
    a2a = {"jsonrpc": "2.0", "id": 8, "method": "SendMessage", "params": {"message": message}}
    answer = broker.client.post("/api/a2a", json=a2a, headers=A2A)
    assert answer.status_code == 200, answer.text
    error = answer.json()["error"]
    assert error["code"] == -32602, error
    assert "nested deeper than" in json.dumps(error)
    assert "/message/parts/0/data" in json.dumps(error)
    # (Other tests' deliveries may still reach checkout: look for this handoff's title only.)
    assert not [thread for thread in checkout.threads() if title in json.dumps(thread)]


# ---------------------------------------------------------------- what storage cannot keep


CANNOT_KEEP = [
    ("lone surrogate in a value", '{"x": "a\\ud800b"}', "/context/evidence/3/data/x"),
    ("lone surrogate in a key", '{"\\udc00": 1}', "/context/evidence/3/data/\\udc00"),
    ("lone surrogate in a nested list", '{"x": [1, ["\\ud83d"]]}', "/context/evidence/3/data/x/1/0"),
    ("NaN", '{"x": NaN}', "/"),
    ("Infinity", '{"x": -Infinity}', "/"),
    ("a double that overflows", '{"x": 1e400}', "/"),
    ("an integer of 5000 digits", '{"x": ' + "9" * 5000 + "}", "/"),
]


@pytest.mark.attack("intake")
@pytest.mark.parametrize(("name", "data", "field"), CANNOT_KEEP, ids=[case[0] for case in CANNOT_KEEP])
def test_what_storage_cannot_keep_is_refused_naming_the_field(broker, clean_fakes, name, data, field):
    key = f"keep-{uuid.uuid4()}"
    raw = _with_data(handoff_body(None), data)
    problem = _problem(
        broker.client.post("/api/handoffs", content=raw, headers={**JSON, "Idempotency-Key": key}), 422
    )
    assert _fields(problem) == [field]
    assert field in problem["detail"] or field == "/"
    _nothing_stored_under(broker, key)


@pytest.mark.attack("intake")
def test_a_body_that_grows_past_what_an_entity_holds_is_413(broker, clean_fakes):
    """``1e15`` is five bytes on the wire and eighteen characters (36 bytes of UTF-16) as stored."""
    key = f"grow-{uuid.uuid4()}"
    body = handoff_body(None)
    body["context"]["evidence"] = [
        {"kind": "kql", "title": f"t{i}", "query": "q", "columns": ["v"], "rows": "@ROWS@"} for i in range(20)
    ]
    shell = len(json.dumps(body).encode())
    per_table = (MAX_BODY_BYTES - shell) // 20
    rows = "[" + ",".join(["[1e15]"] * (per_table // 7 - 1)) + "]"
    raw = json.dumps(body).replace('"@ROWS@"', rows)
    assert len(raw.encode()) <= MAX_BODY_BYTES
    problem = _problem(
        broker.client.post("/api/handoffs", content=raw, headers={**JSON, "Idempotency-Key": key}), 413
    )
    assert _fields(problem) == ["/"]
    assert "as stored" in problem["detail"]
    _nothing_stored_under(broker, key)


@pytest.mark.attack("intake")
def test_a_hand_back_storage_cannot_keep_is_refused_and_changes_nothing(broker, clean_fakes):
    handoff_id = broker.client.post("/api/handoffs", json=handoff_body(None)).json()["id"]
    broker.wait_status(handoff_id, "delivered", timeout=20)
    body = handback_body()
    body["evidence"] = [{"kind": "kql", "title": "t", "query": "q", "columns": ["v"], "rows": [["@"]]}]
    raw = json.dumps(body).replace('"@"', '"\\udbff"')
    problem = _problem(
        broker.client.post(f"/api/handoffs/{handoff_id}/handback", content=raw, headers=JSON), 422
    )
    assert _fields(problem) == ["/evidence/0/rows/0/0"]
    assert broker.client.get(f"/api/handoffs/{handoff_id}").json()["handbacks"] == []


# Text that looks like the framing of the Table batch its handoff's rows are written in: a boundary that
# closes the part, a changeset of its own with a DELETE of another handoff's state, bare CR and LF. Stored
# as data, it ends nothing and adds no operation.
BATCH_FRAMING = (
    "before\r\n--changeset_00000000-0000-0000-0000-000000000000--\r\n--batch_0\r\n"
    "Content-Type: multipart/mixed; boundary=changeset_x\r\n\r\n--changeset_x\r\n"
    "Content-Type: application/http\r\nContent-Transfer-Encoding: binary\r\nContent-ID: 9\r\n\r\n"
    "DELETE http://127.0.0.1/devstoreaccount1/handoffs(PartitionKey='x',RowKey='state') HTTP/1.1\r\n"
    "If-Match: *\r\n\r\n--changeset_x--\r\n--batch_0--\rlone CR\nlone LF after"
)


@pytest.mark.attack("intake")
def test_text_that_looks_like_batch_framing_is_stored_and_handed_back_as_sent(broker, clean_fakes):
    sent = handoff_body(None)
    sent["context"]["summary"] = BATCH_FRAMING
    sent["context"]["hypotheses"] = [BATCH_FRAMING]
    handoff_id = broker.client.post("/api/handoffs", json=sent).json()["id"]
    view = broker.wait_status(handoff_id, "delivered", timeout=20)
    assert (view["context"]["summary"], view["context"]["hypotheses"]) == (BATCH_FRAMING, [BATCH_FRAMING])

    back = broker.client.post(
        f"/api/handoffs/{handoff_id}/handback", json=handback_body(rootCause=BATCH_FRAMING)
    )
    assert back.status_code == 202, back.text[:2000]
    view = broker.wait_status(handoff_id, "handedBack", timeout=20)
    assert view["handbacks"][0]["rootCause"] == BATCH_FRAMING
    # Every row the batches wrote is there and chains: none was cut short or added.
    verified = broker.client.get(f"/api/handoffs/{handoff_id}/audit/verify")
    assert verified.status_code == 200 and verified.json()["valid"] is True, verified.text


@pytest.mark.attack("intake")
def test_resource_ids_nested_hundreds_deep_cost_a_handful_of_history_rows(broker, clean_fakes, azurite):
    # Each scope of a handoff's resources is a history row written at every hand-back. A 1,024-character
    # ID of 248 nested type/name pairs was 249 scopes: 100 of them, some 25,000 rows per hand-back.
    deep = [f"/subscriptions/{uuid.uuid4()}/providers/Microsoft.Web" + "/x/y" * 237 for _ in range(100)]
    assert all(len(resource) <= 1024 for resource in deep)
    sent = handoff_body(None)
    sent["context"]["resources"] = deep
    handoff_id = broker.client.post("/api/handoffs", json=sent).json()["id"]
    broker.wait_status(handoff_id, "delivered", timeout=20)
    back = broker.client.post(f"/api/handoffs/{handoff_id}/handback", json=handback_body())
    assert back.status_code == 202, back.text[:2000]
    broker.wait_status(handoff_id, "handedBack", timeout=20)

    table = StorageClients(Settings.from_env({"HANDOFF_STORAGE": azurite.connection_string})).table(
        HISTORY_TABLE
    )
    rows = list(table.query_entities("HandoffId eq @id", parameters={"id": handoff_id}, select=["RowKey"]))
    # Per ID: its subscription, the five outermost levels and the resource itself; and one row in `all`.
    assert len(rows) == 100 * 7 + 1
    # The resource and its outermost levels are still found by a history search.
    for scope in (deep[0], deep[0][: deep[0].index("/x/y") + len("/x/y/x/y")]):
        found = broker.client.get("/api/history", params={"resource": scope})
        assert found.status_code == 200, found.text[:500]
        assert [item["handoffId"] for item in found.json()["items"]] == [handoff_id]


# ---------------------------------------------------------------- the hardest allowed payloads


# Text that is legal but awkward: astral characters, combining marks, right-to-left text, NUL and other
# controls, line and paragraph separators, a byte-order mark, noncharacters, JSON Pointer metacharacters,
# Markdown fences and HTML.
AWKWARD = (
    "x\U0001f600\U0001f9d1\u200d\U0001f4bb e\u0301 \u05e9\u05dc\u05d5\u05dd \u0000 \u0001 \u001f \u007f "
    '\u2028 \u2029 \ufeff \ufffe \uffff \U0010ffff ~0 ~1 / \\ " ``` <b>&amp;</b> ${x} %s \U0001d54f x'
)


def _nest(depth: int, leaf: Any) -> Any:
    """An object ``depth`` levels deep (counting itself) whose keys are awkward too."""
    value = leaf
    for level in range(depth - 1):
        value = {f"k{level}/~{AWKWARD[:12]}": value, "": [level, -0.0, 5e-324]}
    return value


def _depth(value: Any) -> int:
    if isinstance(value, dict):
        return 1 + max((_depth(v) for v in value.values()), default=0)
    if isinstance(value, list):
        return 1 + max((_depth(v) for v in value), default=0)
    return 0


def _fill(body: dict[str, Any], notes: list[dict[str, Any]], target: int) -> str:
    """Grow the notes with 4-byte characters until the body is exactly ``target`` bytes of UTF-8."""
    text = json.dumps(body, ensure_ascii=False)
    missing = target - len(text.encode())
    assert missing >= 0, missing
    for note in reversed(notes):
        room = 60_000 - len(note["content"])
        grow = min(room, missing // 4)
        note["content"] += "\U0001f600" * grow
        missing -= 4 * grow
    notes[0]["content"] += "z" * missing
    text = json.dumps(body, ensure_ascii=False)
    assert len(text.encode()) == target
    return text


def _hardest_handoff(source_thread: str) -> tuple[dict[str, Any], str]:
    body = handoff_body(source_thread)
    context = body["context"]
    context["title"] = "\U0001f525" * 150 + AWKWARD[:149] + "x"
    context["summary"] = AWKWARD * 100
    context["hypotheses"] = [f"{i} {AWKWARD}" for i in range(50)]
    context["actionsTaken"] = [f"{i} {AWKWARD}" for i in range(50)]
    # Not PagerDuty: its incident ids are held to PagerDuty's shape.
    context["incident"] = {"id": AWKWARD, "platform": "opsgenie"}
    deepest = {"kind": "data", "title": "deepest allowed", "data": _nest(MAX_DEPTH - DATA_LEVEL + 1, AWKWARD)}
    rows = [[2**63 + 1, -(2**53), 1e15, 1.7976931348623157e308, 5e-324, -0.0, AWKWARD, None, True]] * 40
    kql = {
        "kind": "kql",
        "title": AWKWARD[:99] + "x",
        "query": "```\n" + AWKWARD,
        "columns": [f"c{i}" for i in range(9)],
        "rows": rows,
    }
    notes = [{"kind": "note", "title": f"n{i}", "content": AWKWARD} for i in range(96)]
    context["evidence"] = [*context["evidence"][:2], deepest, kql, *notes]
    assert len(context["evidence"]) == 100
    assert _depth(body) == MAX_DEPTH
    return body, _fill(body, notes, MAX_BODY_BYTES)


def _hardest_handback(thread_id: str | None) -> tuple[dict[str, Any], str]:
    body = handback_body(thread_id=thread_id)
    body["summary"] = AWKWARD * 50
    body["rootCause"] = AWKWARD * 50
    body["recommendedActions"] = [f"{i} {AWKWARD}" for i in range(50)]
    # The hand-back's data sits three levels down: root, evidence, item, data.
    deepest = {"kind": "data", "title": "deepest allowed", "data": _nest(MAX_DEPTH - 3, AWKWARD)}
    notes = [{"kind": "note", "content": AWKWARD} for _ in range(99)]
    body["evidence"] = [deepest, *notes]
    assert _depth(body) == MAX_DEPTH
    return body, _fill(body, notes, MAX_BODY_BYTES)


def _same_json(a: Any, b: Any) -> bool:
    return json.dumps(a, sort_keys=True) == json.dumps(b, sort_keys=True)


@pytest.mark.attack("intake")
def test_the_hardest_allowed_handoff_is_read_delivered_handed_back_audited_and_swept(
    broker, clean_fakes, azurite, registry_config
):
    ops, checkout = clean_fakes.agents["ops"], clean_fakes.agents["checkout"]
    source_thread = ops.create_thread("Ops: the hardest payload")["id"]
    sent, raw = _hardest_handoff(source_thread)
    key = "".join(chr(c) for c in range(0x21, 0x7F)) + " " + "k" * 105  # 200 printable characters
    accepted = broker.client.post(
        "/api/handoffs", content=raw.encode(), headers={**JSON, "Idempotency-Key": key}
    )
    assert accepted.status_code == 202, accepted.text[:2000]
    handoff_id = accepted.json()["id"]

    # Read: the REST view gives back exactly what was sent.
    view = broker.wait_status(handoff_id, "delivered", timeout=30)
    assert _same_json(view["context"], sent["context"])
    # Delivered: B's thread starts with the handoff (shortened to the message budget, links to the rest).
    [thread] = threads_mentioning(checkout, handoff_id)
    assert f"/api/handoffs/{handoff_id}" in thread["startMessage"]["text"]
    broker.wait_for(handoff_id, lambda _: bool(messages_mentioning(ops, source_thread, thread["id"])), 20)
    # A replay with the same key and body is the same handoff.
    replay = broker.client.post(
        "/api/handoffs", content=raw.encode(), headers={**JSON, "Idempotency-Key": key}
    )
    assert (replay.status_code, replay.json()["id"]) == (200, handoff_id)

    # Handed back: the hardest hand-back is stored, posted into A's thread and read back.
    handback, handback_raw = _hardest_handback(thread["id"])
    back = broker.client.post(
        f"/api/handoffs/{handoff_id}/handback", content=handback_raw.encode(), headers=JSON
    )
    assert back.status_code == 202, back.text[:2000]
    view = broker.wait_for(
        handoff_id, lambda v: v["handbacks"] and v["handbacks"][0]["delivery"] == "posted", 30
    )
    assert view["status"] == "handedBack"
    stored = view["handbacks"][0]
    assert _same_json(stored["evidence"], handback["evidence"])
    assert (stored["summary"], stored["rootCause"]) == (handback["summary"], handback["rootCause"])
    assert messages_mentioning(ops, source_thread, f"[Handoff {handoff_id}] Hand-back")

    # Audited, linked and searchable.
    audit = broker.client.get(f"/api/handoffs/{handoff_id}/audit")
    assert audit.status_code == 200
    types = [event["type"] for event in audit.json()["events"]]
    for expected in ("accepted", "delivered", "crossLinked", "handBackReceived", "handedBack"):
        assert expected in types
    links = broker.client.get(f"/api/threads/ops/{source_thread}/links")
    assert links.status_code == 200 and links.json()["links"][0]["handoffId"] == handoff_id
    history = broker.client.get("/api/history", params={"agent": "checkout", "top": 100})
    assert history.status_code == 200
    assert handoff_id in {item["handoffId"] for item in history.json()["items"]}

    # The other reads: MCP and A2A.
    rpc = {
        "jsonrpc": "2.0",
        "id": 1,
        "method": "tools/call",
        "params": {"name": "handoff_get", "arguments": {"handoffId": handoff_id}},
    }
    got = broker.client.post("/api/mcp", json=rpc, headers=MCP).json()["result"]
    assert got["isError"] is False and _same_json(got["structuredContent"]["context"], sent["context"])
    task = broker.client.post(
        "/api/a2a",
        json={"jsonrpc": "2.0", "id": 2, "method": "GetTask", "params": {"id": handoff_id}},
        headers=A2A,
    )
    assert task.status_code == 200 and "result" in task.json(), task.text[:2000]

    # Swept: with its hand-back stranded (as if its message were lost), the sweeper reads it without
    # error and re-queues the work, and the worker finishes it without posting the findings twice.
    settings = Settings.from_env({"HANDOFF_STORAGE": azurite.connection_string})
    clients = StorageClients(settings)

    def strand(state: Any) -> None:
        state.handbacks[1].status = "pending"

    class OnlyThis(TableHandoffStore):
        def stale_pending(self, older_than: datetime) -> list[str]:
            return [found for found in super().stale_pending(older_than) if found == handoff_id]

    store = OnlyThis(clients)
    store.update_state(handoff_id, strand)
    later = datetime.now(UTC) + timedelta(seconds=settings.sweep_after_seconds + 60)
    sweeper = build_handoffs(
        settings=settings, registry=Registry.from_data(registry_config), store=store,
        queue=delivery_queue(clients), agents=None, clock=lambda: later,  # type: ignore[arg-type]
    ).sweeper  # fmt: skip
    report = sweeper.sweep()
    assert (report.requeued, report.gave_up, report.errors) == (1, 0, 0)
    broker.wait_for(handoff_id, lambda v: v["handbacks"][0]["delivery"] == "posted", 30)
    assert len(messages_mentioning(ops, source_thread, f"[Handoff {handoff_id}] Hand-back")) == 1
    assert "redeliveryScheduled" in broker.audit_types(handoff_id)


# ---------------------------------------------------------------- long ids, query values and headers


def _raw_request(
    broker: Any, method: str, target: str, headers: dict[str, str] | None = None
) -> tuple[int, str, str]:
    """One request with a target of any length (httpx refuses URLs over 64 KiB before sending them)."""
    connection = http.client.HTTPConnection("127.0.0.1", broker.port, timeout=30)
    try:
        body = b"{}" if method == "POST" else None
        connection.request(method, target, body=body, headers={**JSON, **(headers or {})})
        response = connection.getresponse()
        return response.status, response.getheader("content-type") or "", response.read().decode()
    finally:
        connection.close()


def _four_xx_problem(status: int, content_type: str, text: str) -> dict[str, Any]:
    assert 400 <= status < 500, (status, text[:500])
    assert content_type.startswith("application/problem+json"), (status, content_type, text[:500])
    problem = json.loads(text)
    assert problem["status"] == status and problem["title"]
    return problem


LONG = [60, 5_000, 8_000, 8_200, 100_000]
ID_ROUTES = [
    ("GET", "/api/handoffs/{id}"),
    ("GET", "/api/handoffs/{id}/audit"),
    ("POST", "/api/handoffs/{id}/handback"),
    ("GET", "/api/handoffs/{id}/shared-memory"),
    ("POST", "/api/handoffs/{id}/shared-memory/replay"),
]


@pytest.mark.attack("intake")
@pytest.mark.parametrize(("method", "route"), ID_ROUTES, ids=[f"{m} {r}" for m, r in ID_ROUTES])
def test_long_route_ids_are_4xx_problems(broker, method, route):
    for length in LONG:
        target = route.replace("{id}", "a" * length)
        status, content_type, text = _raw_request(broker, method, target)
        problem = _four_xx_problem(status, content_type, text)
        # Up to the request-line limit the broker answers (no such handoff); beyond it, the host (414).
        assert status == (404 if len(target) < 8192 else 414), (length, status, problem)


@pytest.mark.attack("intake")
@pytest.mark.parametrize("name", ["q", "resource", "alertRule", "agent", "continuationToken"])
def test_long_history_query_values_are_4xx_problems(broker, name):
    for length in LONG:
        status, content_type, text = _raw_request(broker, "GET", f"/api/history?{name}={'a' * length}")
        if len(f"/api/history?{name}=") + length > 8192:
            assert status == 414
        if status != 200:  # a short value may simply be a search that finds nothing
            _four_xx_problem(status, content_type, text)


@pytest.mark.attack("intake")
def test_long_links_query_beyond_the_request_line_is_414(broker):
    for route in (
        "/api/links?agent=ops&threadId={x}",
        "/api/threads/ops/{x}/links",
        "/api/links?agent={x}&threadId=t",
    ):
        status, content_type, text = _raw_request(broker, "GET", route.replace("{x}", "a" * 100_000))
        assert status == 414
        _four_xx_problem(status, content_type, text)


@pytest.mark.attack("intake")
def test_long_thread_ids_on_the_links_routes_are_4xx(broker):
    for route in ("/api/links?agent=ops&threadId={x}", "/api/threads/ops/{x}/links"):
        status, content_type, text = _raw_request(broker, "GET", route.replace("{x}", "a" * 5_000))
        _four_xx_problem(status, content_type, text)


@pytest.mark.attack("intake")
def test_long_idempotency_keys_are_4xx_problems(broker, clean_fakes):
    body = json.dumps(handoff_body(None))
    for length in (201, 5_000, 40_000):
        response = broker.client.post(
            "/api/handoffs", content=body, headers={**JSON, "Idempotency-Key": "k" * length}
        )
        problem = _four_xx_problem(response.status_code, response.headers["content-type"], response.text)
        if length <= 8_000:
            assert response.status_code == 400 and _fields(problem) == ["Idempotency-Key"]
        else:
            assert response.status_code == 431


# ---------------------------------------------------------------- queue messages


@pytest.mark.attack("intake")
@pytest.mark.parametrize(
    ("content", "reason"),
    [
        ('{"op": "deliver", "handoffId": ' + _arrays(10_000) + "}", "nested deeper than"),
        ('["deliver"]', "not a JSON object"),
        ('{"op": "deliver", "attempt": NaN}', "NaN"),
    ],
    ids=["deep", "not an object", "NaN"],
)
def test_a_queue_message_the_broker_cannot_read_is_poisoned_at_once_with_the_reason(
    broker, azurite, content, reason
):
    encode = {"message_encode_policy": TextBase64EncodePolicy()}
    work = QueueClient.from_connection_string(azurite.connection_string, DELIVERY_QUEUE, **encode)
    sent = work.send_message(content)
    poison = QueueClient.from_connection_string(
        azurite.connection_string, DELIVERY_POISON_QUEUE, message_decode_policy=TextBase64DecodePolicy()
    )
    # Nothing else reads this poison queue: take its messages out of sight for a minute while looking.
    deadline = time.monotonic() + 30
    seen: list[str] = []
    while time.monotonic() < deadline:
        for parked in poison.receive_messages(messages_per_page=32, visibility_timeout=60):
            seen.append(parked.content)
            try:
                found = json.loads(parked.content)
            except ValueError:
                continue  # a copy the host parked verbatim
            if isinstance(found, dict) and found.get("messageId") == sent.id:
                assert reason in found["reason"]
                return
        time.sleep(0.2)
    raise AssertionError(f"message {sent.id} was not parked with a reason; poison queue: {seen[-10:]}")
