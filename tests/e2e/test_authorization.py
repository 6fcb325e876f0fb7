"""Who may do what, tried as an attacker would, against a broker whose registry names its callers.

Principals come from the ``X-MS-CLIENT-PRINCIPAL-ID`` header, as App Service Authentication sets it in
Azure; keys from ``X-Handoff-Agent-Key``. Every refusal is a problem and a line in the security log,
and never an event in the audit of the handoff that was attacked.
"""

from __future__ import annotations

import copy
import json
import uuid
from collections.abc import Iterator

import httpx
import pytest

from tests.e2e.helpers import handback_body, handoff_body
from tests.support.broker import BrokerProcess

OPS = "00000000-0000-4000-8000-00000000000a"
CHECKOUT = "00000000-0000-4000-8000-00000000000b"
PAYMENTS = "00000000-0000-4000-8000-00000000000c"
INVENTORY = "00000000-0000-4000-8000-00000000000d"
OPERATOR = "00000000-0000-4000-8000-0000000000ff"
NOBODY = "00000000-0000-4000-8000-000000000000"
SPAMMER = "00000000-0000-4000-8000-0000000000ee"
OPS_KEY = "ops-agent-key-" + "k" * 24
OPERATOR_KEY = "operator-key-" + "o" * 24


def as_principal(object_id: str) -> dict[str, str]:
    return {"X-MS-CLIENT-PRINCIPAL-ID": object_id, "X-MS-CLIENT-PRINCIPAL-NAME": f"user-{object_id[-2:]}"}


OPERATOR_HEADERS = {"X-Handoff-Agent-Key": OPERATOR_KEY}


@pytest.fixture(scope="module")
def secured(broker_env, shared_memory_registry, tmp_path_factory) -> Iterator[BrokerProcess]:
    """The broker with a registry that names callers for each agent, operators and hand-off rules."""
    config = copy.deepcopy(shared_memory_registry)
    principals = {"ops": OPS, "checkout": CHECKOUT, "payments": PAYMENTS, "inventory": INVENTORY}
    for agent in config["agents"]:
        if agent["name"] in principals:
            agent["callers"] = [principals[agent["name"]]]
        if agent["name"] == "ops":
            agent["keySetting"] = "TEST_OPS_AGENT_KEY"
            agent["mayHandOffTo"] = ["checkout", "pay*", "partner"]
    config["operators"] = {"callers": [OPERATOR], "keySetting": "TEST_OPERATOR_KEY"}
    path = tmp_path_factory.mktemp("secured-registry") / "handoff.config.json"
    path.write_text(json.dumps(config))
    env = {
        **broker_env,
        "HANDOFF_CONFIG": str(path),
        "TEST_OPS_AGENT_KEY": OPS_KEY,
        "TEST_OPERATOR_KEY": OPERATOR_KEY,
        "HANDOFF_RATE_LIMIT_PER_MINUTE": "600",
        "HANDOFF_RATE_LIMIT_BURST": "40",
    }
    with BrokerProcess.running(env, tmp_path_factory.mktemp("secured-broker") / "host.log") as process:
        # The helpers (wait_for, audit_types) read as an operator.
        process.client.headers.update(OPERATOR_HEADERS)
        yield process


@pytest.fixture(scope="module")
def anonymous(secured) -> Iterator[httpx.Client]:
    """A client that brings no principal and no key (what a function key alone is in Azure)."""
    with httpx.Client(base_url=secured.url, timeout=30) as client:
        yield client


def delivered_ops_to_checkout(secured: BrokerProcess, fakes) -> tuple[dict, str]:
    """An ops → checkout handoff, delivered, as ops made it."""
    source_thread = fakes.agents["ops"].create_thread("Ops: checkout is failing")["id"]
    response = secured.client.post(
        "/api/handoffs", json=handoff_body(source_thread), headers=as_principal(OPS)
    )
    assert response.status_code == 202, response.text
    handoff_id = response.json()["id"]
    view = secured.wait_for(
        handoff_id, lambda b: b["status"] == "delivered" and "crossLinked" in secured.audit_types(handoff_id)
    )
    return view, source_thread


def refusals(secured: BrokerProcess) -> int:
    return secured.logs().count("refused: caller=")


@pytest.mark.attack("authorization")
def test_a_caller_hands_off_only_as_itself_and_only_where_allowed(secured, clean_fakes):
    thread = clean_fakes.agents["ops"].create_thread("Ops")["id"]
    as_payments = secured.client.post(
        "/api/handoffs", json=handoff_body(thread), headers=as_principal(PAYMENTS)
    )
    to_inventory = secured.client.post(
        "/api/handoffs", json=handoff_body(thread, target="inventory"), headers=as_principal(OPS)
    )
    by_ops_key = secured.client.post(
        "/api/handoffs", json=handoff_body(thread), headers={"X-Handoff-Agent-Key": OPS_KEY}
    )
    wrong_key = secured.client.post(
        "/api/handoffs", json=handoff_body(thread), headers={"X-Handoff-Agent-Key": OPS_KEY[:-1] + "x"}
    )
    as_operator = secured.client.post("/api/handoffs", json=handoff_body(thread))

    assert as_payments.status_code == 403, as_payments.text
    assert as_payments.headers["content-type"].startswith("application/problem+json")
    assert "may not hand off as agent 'ops'" in as_payments.json()["detail"]
    assert (
        to_inventory.status_code == 403 and "may not hand off to 'inventory'" in to_inventory.json()["detail"]
    )
    assert by_ops_key.status_code == 202, by_ops_key.text
    assert secured.audit_types(by_ops_key.json()["id"])[0] == "accepted"
    events = secured.client.get(f"/api/handoffs/{by_ops_key.json()['id']}/audit").json()["events"]
    assert events[0]["actor"] == "agentKey:ops"
    assert wrong_key.status_code == 401
    assert OPS_KEY[:-1] not in wrong_key.text
    assert as_operator.status_code == 403  # operators read and steer; they are no agent


@pytest.mark.attack("authorization")
def test_a_function_key_alone_acts_as_nobody_once_callers_are_named(secured, anonymous, clean_fakes):
    view, thread = delivered_ops_to_checkout(secured, clean_fakes)

    assert anonymous.post("/api/handoffs", json=handoff_body(thread)).status_code == 403
    assert anonymous.get(f"/api/handoffs/{view['id']}").status_code == 404
    assert anonymous.get(f"/api/handoffs/{view['id']}/audit").status_code == 404
    assert anonymous.get("/api/history").json()["items"] == []


@pytest.mark.attack("authorization")
def test_an_outsider_reads_nothing_of_another_chain(secured, clean_fakes):
    view, source_thread = delivered_ops_to_checkout(secured, clean_fakes)
    handoff_id = view["id"]
    assert (
        secured.client.post(
            f"/api/handoffs/{handoff_id}/handback", json=handback_body(), headers=as_principal(CHECKOUT)
        ).status_code
        == 202
    )
    secured.wait_status(handoff_id, "handedBack")
    before = refusals(secured)

    for outsider in (PAYMENTS, NOBODY):
        headers = as_principal(outsider)
        unknown = secured.client.get(f"/api/handoffs/{uuid.uuid4()}", headers=headers)
        read = secured.client.get(f"/api/handoffs/{handoff_id}", headers=headers)
        # Not there and not yours answer alike: existence does not leak.
        assert read.status_code == unknown.status_code == 404
        assert read.json()["detail"] == f"no handoff with id '{handoff_id}'"
        assert secured.client.get(f"/api/handoffs/{handoff_id}/audit", headers=headers).status_code == 404
        assert (
            secured.client.get(f"/api/handoffs/{handoff_id}/shared-memory", headers=headers).status_code
            == 404
        )
        assert (
            secured.client.post(
                f"/api/handoffs/{handoff_id}/shared-memory/replay", headers=headers
            ).status_code
            == 404
        )
        assert (
            secured.client.post(
                f"/api/handoffs/{handoff_id}/handback", json=handback_body(), headers=headers
            ).status_code
            == 404
        )
        links = secured.client.get(f"/api/threads/ops/{source_thread}/links", headers=headers)
        assert links.status_code == 403
        query_links = secured.client.get(
            "/api/links",
            params={"agent": "checkout", "threadId": view["target"]["threadId"]},
            headers=headers,
        )
        assert query_links.status_code == 403
        history = secured.client.get("/api/history", headers=headers).json()["items"]
        assert handoff_id not in [item["handoffId"] for item in history]
    assert refusals(secured) >= before + 14

    # Both agents of the chain and an operator do see it.
    for insider in (as_principal(OPS), as_principal(CHECKOUT), as_principal(OPERATOR), OPERATOR_HEADERS):
        assert secured.client.get(f"/api/handoffs/{handoff_id}", headers=insider).status_code == 200
        history = secured.client.get("/api/history", headers=insider).json()["items"]
        assert handoff_id in [item["handoffId"] for item in history]
    assert secured.client.get(f"/api/threads/ops/{source_thread}/links", headers=as_principal(OPS)).json()[
        "links"
    ]


@pytest.mark.attack("authorization")
def test_a_caller_lists_only_the_handoffs_it_handed_off_or_received(secured, clean_fakes):
    view, _thread = delivered_ops_to_checkout(secured, clean_fakes)
    handoff_id = view["id"]

    def listed(headers: dict[str, str], **params: str) -> list[str]:
        response = secured.client.get("/api/handoffs", params={"top": "100", **params}, headers=headers)
        assert response.status_code == 200, response.text
        return [item["id"] for item in response.json()["items"]]

    for outsider in (as_principal(PAYMENTS), as_principal(NOBODY)):
        assert handoff_id not in listed(outsider)
        # Naming the agents of the handoff as filters does not widen what the caller may see.
        assert handoff_id not in listed(outsider, source="ops", target="checkout")
    payments = listed(as_principal(PAYMENTS))
    assert all(
        "payments" in (item["source"], item["target"])
        for item in secured.client.get("/api/handoffs", headers=as_principal(PAYMENTS)).json()["items"]
    ), payments
    for insider in (as_principal(OPS), as_principal(CHECKOUT), as_principal(OPERATOR), OPERATOR_HEADERS):
        assert handoff_id in listed(insider)
    # A token an operator was given lets an outsider see nothing more.
    first = secured.client.get("/api/handoffs", params={"top": "1"}, headers=OPERATOR_HEADERS).json()
    if first["continuationToken"]:
        rest = listed(as_principal(PAYMENTS), continuationToken=first["continuationToken"])
        assert handoff_id not in rest


@pytest.mark.attack("authorization")
def test_reads_over_mcp_and_a2a_are_filtered_the_same_way(secured, clean_fakes):
    view, _thread = delivered_ops_to_checkout(secured, clean_fakes)

    def mcp(headers: dict[str, str], name: str, arguments: dict) -> dict:
        response = secured.client.post(
            "/api/mcp",
            json={
                "jsonrpc": "2.0",
                "id": 1,
                "method": "tools/call",
                "params": {"name": name, "arguments": arguments},
            },
            headers={
                "Accept": "application/json, text/event-stream",
                "MCP-Protocol-Version": "2025-06-18",
                **headers,
            },
        )
        assert response.status_code == 200, response.text
        return response.json()["result"]

    outsider = mcp(as_principal(PAYMENTS), "handoff_get", {"handoffId": view["id"]})
    insider = mcp(as_principal(CHECKOUT), "handoff_get", {"handoffId": view["id"]})
    history = mcp(as_principal(PAYMENTS), "handoff_history", {})
    listing = mcp(as_principal(PAYMENTS), "handoff_list", {"top": 100})
    own = mcp(as_principal(OPS), "handoff_list", {"top": 100})
    assert listing["isError"] is False and view["id"] not in json.dumps(listing)
    assert view["id"] in [item["id"] for item in own["structuredContent"]["items"]]
    assert outsider["isError"] is True and "404" in outsider["content"][0]["text"]
    assert insider["isError"] is False and insider["structuredContent"]["id"] == view["id"]
    assert view["id"] not in json.dumps(history)

    def get_task(headers: dict[str, str]) -> dict:
        response = secured.client.post(
            "/api/a2a",
            json={"jsonrpc": "2.0", "id": 1, "method": "GetTask", "params": {"id": view["id"]}},
            headers={"A2A-Version": "1.0", **headers},
        )
        assert response.status_code == 200, response.text
        return response.json()

    assert "error" in get_task(as_principal(PAYMENTS))
    assert get_task(as_principal(OPS))["result"]["id"] == view["id"]


@pytest.mark.attack("authorization")
def test_children_attach_only_to_a_chain_the_source_is_part_of_and_the_victim_audit_stays_clean(
    secured, clean_fakes
):
    view, _thread = delivered_ops_to_checkout(secured, clean_fakes)
    victim_events = len(secured.client.get(f"/api/handoffs/{view['id']}/audit").json()["events"])
    before = refusals(secured)
    payments_thread = clean_fakes.agents["payments"].create_thread("Payments")["id"]

    answers = [
        secured.client.post(
            "/api/handoffs",
            json=handoff_body(
                payments_thread, source="payments", target="checkout", parentHandoffId=view["id"]
            ),
            headers=as_principal(PAYMENTS),
        )
        for _ in range(25)
    ]
    unknown_parent = secured.client.post(
        "/api/handoffs",
        json=handoff_body(
            payments_thread, source="payments", target="checkout", parentHandoffId=str(uuid.uuid4())
        ),
        headers=as_principal(PAYMENTS),
    )

    assert {answer.status_code for answer in answers} == {422}
    assert {answer.json()["detail"] for answer in answers} == {unknown_parent.json()["detail"]}
    assert answers[0].json()["errors"][0]["field"] == "/parentHandoffId"
    after = secured.client.get(f"/api/handoffs/{view['id']}/audit").json()["events"]
    assert len(after) == victim_events, [event["type"] for event in after[victim_events:]]
    assert refusals(secured) >= before + 25
    # The target of the chain may continue it. (Not to payments: the suite's other broker shares this
    # storage and may run the delivery, and payments' first ARM lookup is another test's to watch.)
    checkout_thread = view["target"]["threadId"]
    child = secured.client.post(
        "/api/handoffs",
        json=handoff_body(checkout_thread, source="checkout", target="ops", parentHandoffId=view["id"]),
        headers=as_principal(CHECKOUT),
    )
    assert child.status_code == 202, child.text


@pytest.mark.attack("authorization")
def test_only_the_target_hands_back_and_only_operators_replay(secured, clean_fakes):
    view, _thread = delivered_ops_to_checkout(secured, clean_fakes)
    url = f"/api/handoffs/{view['id']}"

    by_source = secured.client.post(
        f"{url}/handback", json=handback_body(agent="ops"), headers=as_principal(OPS)
    )
    forged = secured.client.post(f"{url}/handback", json=handback_body(), headers=as_principal(OPS))
    replay_by_agent = secured.client.post(f"{url}/shared-memory/replay", headers=as_principal(OPS))
    replay_by_operator = secured.client.post(f"{url}/shared-memory/replay", headers=as_principal(OPERATOR))

    assert by_source.status_code == 403  # ops is in the chain but is not its target
    assert forged.status_code == 403 and "may not hand back as agent 'checkout'" in forged.json()["detail"]
    assert replay_by_agent.status_code == 403 and "operator" in replay_by_agent.json()["detail"]
    assert replay_by_operator.status_code == 200, replay_by_operator.text
    assert "handBackReceived" not in secured.audit_types(view["id"])


@pytest.mark.attack("authorization")
def test_ids_cannot_be_computed_from_an_idempotency_key(secured, clean_fakes):
    thread = clean_fakes.agents["ops"].create_thread("Ops")["id"]
    key = f"inc-{uuid.uuid4().hex[:8]}-checkout"
    body = handoff_body(thread)
    first = secured.client.post(
        "/api/handoffs", json=body, headers={**as_principal(OPS), "Idempotency-Key": key}
    )
    assert first.status_code == 202
    handoff_id = first.json()["id"]

    # The previous release derived the id as UUIDv5(namespace, "<source>\n<key>"): anyone knowing the key
    # could compute it. Now the id is keyed with the broker's own secret.
    old_rule = str(uuid.uuid5(uuid.UUID("6f0d6a3e-54a7-4f53-9f83-2d4f9a1c7e10"), f"ops\n{key}"))
    assert handoff_id != old_rule
    assert uuid.UUID(handoff_id).version == 4
    again = secured.client.post(
        "/api/handoffs", json=body, headers={**as_principal(OPS), "Idempotency-Key": key}
    )
    assert again.status_code == 200 and again.json()["id"] == handoff_id


@pytest.mark.attack("authorization")
def test_one_caller_is_rate_limited_without_slowing_the_others(secured):
    answers = [
        secured.client.get(f"/api/handoffs/{uuid.uuid4()}", headers=as_principal(SPAMMER)) for _ in range(120)
    ]
    limited = [answer for answer in answers if answer.status_code == 429]
    assert limited, "no request was limited"
    assert {answer.status_code for answer in answers} <= {404, 429}
    assert int(limited[0].headers["Retry-After"]) >= 1
    assert limited[0].headers["content-type"].startswith("application/problem+json")
    assert (
        secured.client.get(f"/api/handoffs/{uuid.uuid4()}", headers=as_principal(NOBODY)).status_code == 404
    )


@pytest.mark.attack("authorization")
def test_thread_links_do_not_follow_into_chains_the_caller_cannot_read(secured, clean_fakes):
    view, ops_thread = delivered_ops_to_checkout(secured, clean_fakes)
    checkout_thread = view["target"]["threadId"]
    # checkout starts a chain of its own from the same thread (no parentHandoffId): ops is not in it.
    other = secured.client.post(
        "/api/handoffs",
        json=handoff_body(checkout_thread, source="checkout", target="inventory"),
        headers=as_principal(CHECKOUT),
    )
    assert other.status_code == 202, other.text
    other_id = other.json()["id"]
    secured.wait_for(other_id, lambda b: b["status"] == "delivered")
    as_ops = secured.client.get(f"/api/threads/ops/{ops_thread}/links", headers=as_principal(OPS)).json()
    as_checkout = secured.client.get(
        f"/api/threads/checkout/{checkout_thread}/links", headers=as_principal(CHECKOUT)
    ).json()

    assert [link["handoffId"] for link in as_ops["links"]] == [view["id"]]
    assert {link["handoffId"] for link in as_checkout["links"]} == {view["id"], other_id}


@pytest.mark.attack("authorization")
def test_seen_before_shows_only_what_the_handoffs_agents_took_part_in(secured, clean_fakes):
    resource = f"/subscriptions/{uuid.uuid4()}/resourceGroups/victim/providers/Microsoft.Web/sites/pay"
    # A chain neither ops nor checkout takes part in: payments hands off to inventory, which hands back a
    # root cause. (No source thread: nothing is posted back, the findings still enter the history.)
    body = handoff_body(None, source="payments", target="inventory")
    body["context"]["resources"] = [resource]
    victim = secured.client.post("/api/handoffs", json=body, headers=as_principal(PAYMENTS))
    assert victim.status_code == 202, victim.text
    victim_id = victim.json()["id"]
    secured.wait_status(victim_id, "delivered", timeout=20)
    secret = f"VICTIM-ROOT-CAUSE-{uuid.uuid4().hex[:6]}"
    back = secured.client.post(
        f"/api/handoffs/{victim_id}/handback",
        json=handback_body(agent="inventory", rootCause=secret),
        headers=as_principal(INVENTORY),
    )
    assert back.status_code == 202, back.text
    secured.wait_status(victim_id, "handedBack", timeout=20)
    as_operator = secured.client.get("/api/history", params={"resource": resource})
    assert secret in as_operator.text  # it is in the history

    # ops hands off about the same resource to checkout: the earlier investigation is none of theirs.
    ops_thread = clean_fakes.agents["ops"].create_thread("Ops")["id"]
    probe = handoff_body(ops_thread)
    probe["context"]["resources"] = [resource]
    probe_id = secured.client.post("/api/handoffs", json=probe, headers=as_principal(OPS)).json()["id"]
    delivered = secured.wait_status(probe_id, "delivered", timeout=20)
    text = clean_fakes.agents["checkout"].thread(delivered["target"]["threadId"])["startMessage"]["text"]

    assert secret not in text and victim_id not in text
    assert (
        secret
        not in secured.client.get(
            "/api/history", params={"resource": resource}, headers=as_principal(OPS)
        ).text
    )
