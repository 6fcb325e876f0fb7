"""Safe chains through HTTP and MCP: depth and ping-pong limits (also under concurrency), chain view."""

from __future__ import annotations

import uuid
from concurrent.futures import ThreadPoolExecutor

import anyio
from mcp import Client

from tests.e2e.helpers import handoff_body


def create(
    broker,
    source: str,
    target: str,
    parent: str | None = None,
    key: str | None = None,
    body: dict | None = None,
):
    body = body or handoff_body(None, source=source, target=target)
    if parent:
        body["parentHandoffId"] = parent
    headers = {"Idempotency-Key": key} if key else None
    return broker.client.post("/api/handoffs", json=body, headers=headers)


def chain_of(broker, *hops: tuple[str, str]) -> list[str]:
    """Create handoffs, each the child of the previous one; returns their ids (root first)."""
    ids: list[str] = []
    for source, target in hops:
        response = create(broker, source, target, ids[-1] if ids else None)
        assert response.status_code == 202, response.text
        ids.append(response.json()["id"])
    return ids


def refusals(broker, handoff_id: str) -> list[dict]:
    """The chainRefused audit events of a handoff (delivery events interleave with them)."""
    events = broker.client.get(f"/api/handoffs/{handoff_id}/audit").json()["events"]
    return [event for event in events if event["type"] == "chainRefused"]


def test_depth_limit_refuses_and_audits_on_the_parent(broker):
    # No ordered pair more than twice before depth 5. Payments only ever hands off (without a thread),
    # so these tests never deliver to it: its ARM lookup stays for the test that checks it.
    hops = [("ops", "checkout"), ("checkout", "ops")] * 2 + [("payments", "ops"), ("payments", "checkout")]
    ids = chain_of(broker, *hops)  # depths 0..5: all allowed with the default limit 5
    deepest = ids[-1]
    assert broker.client.get(f"/api/handoffs/{deepest}").json()["depth"] == 5

    refused = create(broker, "payments", "ops", deepest)

    assert refused.status_code == 409
    problem = refused.json()
    assert problem["title"] == "Conflict"
    assert f"chain {ids[0]} is too deep" in problem["detail"] and "depth 6" in problem["detail"]
    assert problem["errors"][0]["field"] == "/parentHandoffId"
    [event] = refusals(broker, deepest)
    assert event["actor"] == "local"
    assert event["details"] == {
        "rule": "depth", "depth": 6, "limit": 5, "source": "payments", "target": "ops",
        "rootHandoffId": ids[0],
    }  # fmt: skip
    # nothing was created: the deepest handoff has no child
    assert broker.client.get(f"/api/handoffs/{deepest}").json()["chain"]["children"] == []


def test_ping_pong_limit_names_the_chain(broker):
    ids = chain_of(broker, ("ops", "checkout"), ("checkout", "ops"), ("ops", "checkout"), ("checkout", "ops"))

    third = create(broker, "ops", "checkout", ids[-1])

    assert third.status_code == 409
    problem = third.json()
    assert f"chain {ids[0]} already has 2 handoffs ops → checkout" in problem["detail"]
    assert ids[0] in problem["detail"] and ids[2] in problem["detail"]
    assert problem["errors"] == [
        {"field": "/target/agent", "message": f"ops → checkout used 2 times in chain {ids[0]}"}
    ]
    [event] = refusals(broker, ids[-1])
    assert event["details"]["rule"] == "pingPong" and event["details"]["rootHandoffId"] == ids[0]
    assert sorted(event["details"]["existingHandoffIds"]) == sorted([ids[0], ids[2]])
    # Another pair in the same chain is still fine, and so is the same pair in a new chain.
    assert create(broker, "payments", "ops", ids[-1]).status_code == 202
    assert create(broker, "ops", "checkout").status_code == 202


def test_concurrent_requests_cannot_pass_the_pair_limit(broker):
    _root, child = chain_of(broker, ("ops", "checkout"), ("checkout", "ops"))  # ops → checkout: 1 of 2 used

    with ThreadPoolExecutor(max_workers=6) as pool:
        statuses = list(pool.map(lambda _: create(broker, "ops", "checkout", child).status_code, range(6)))

    assert sorted(statuses) == [202] + [409] * 5
    children = broker.client.get(f"/api/handoffs/{child}").json()["chain"]["children"]
    assert len(children) == 1


def test_idempotent_replay_keeps_its_slot(broker):
    _root, child = chain_of(broker, ("ops", "checkout"), ("checkout", "ops"))

    body, key = handoff_body(None), f"replay-{uuid.uuid4()}"
    first = create(broker, "ops", "checkout", child, key=key, body=body)
    replay = create(broker, "ops", "checkout", child, key=key, body=body)

    assert (first.status_code, replay.status_code) == (202, 200)
    assert first.json()["id"] == replay.json()["id"]
    assert create(broker, "ops", "checkout", child).status_code == 409  # 2 used: root and the replayed one


def test_refused_reuse_of_a_key_frees_the_slot_it_took(broker):
    [root] = chain_of(broker, ("ops", "checkout"))
    key = f"reused-{uuid.uuid4()}"
    assert create(broker, "payments", "checkout", root, key=key).status_code == 202

    # Same key (same source agent), different body: 409 from idempotency, and the payments → ops slot
    # that request reserved is given back, so both slots of that pair are still free.
    reused = create(broker, "payments", "ops", root, key=key)
    assert reused.status_code == 409 and "Idempotency-Key" in reused.json()["detail"]
    assert create(broker, "payments", "ops", root).status_code == 202
    assert create(broker, "payments", "ops", root).status_code == 202
    assert create(broker, "payments", "ops", root).status_code == 409


def test_get_shows_parent_and_children(broker):
    root, child = chain_of(broker, ("ops", "checkout"), ("checkout", "ops"))
    sibling = create(broker, "payments", "ops", root).json()["id"]

    root_view = broker.client.get(f"/api/handoffs/{root}").json()
    child_view = broker.client.get(f"/api/handoffs/{child}").json()

    assert root_view["depth"] == 0 and "parent" not in root_view["chain"]
    assert {c["id"] for c in root_view["chain"]["children"]} == {child, sibling}
    first = next(c for c in root_view["chain"]["children"] if c["id"] == child)
    assert first["source"] == "checkout" and first["target"] == "ops" and first["depth"] == 1
    assert first["link"].endswith(f"/api/handoffs/{child}")
    assert child_view["depth"] == 1 and child_view["rootHandoffId"] == root
    assert child_view["chain"]["parent"]["id"] == root
    assert child_view["chain"]["parent"]["source"] == "ops"
    assert child_view["chain"]["children"] == []


def test_limits_apply_to_mcp_calls_too(broker):
    ids = chain_of(broker, ("ops", "checkout"), ("checkout", "ops"), ("ops", "checkout"), ("checkout", "ops"))
    body = handoff_body(None, source="ops", target="checkout", parentHandoffId=ids[-1])

    async def main():
        async with Client(f"{broker.url}/api/mcp", mode="legacy") as client:
            return await client.call_tool("handoff_create", body)

    result = anyio.run(main)

    assert result.is_error
    text = result.content[0].text
    assert text.startswith(f"Conflict (409): chain {ids[0]} already has 2 handoffs ops → checkout")
    assert result.structured_content["status"] == 409
    assert len(refusals(broker, ids[-1])) == 1
