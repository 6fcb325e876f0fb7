"""The core promise, end to end through the HTTP API: hand off, deliver, cross-link, audit, hand back."""

from __future__ import annotations

import concurrent.futures
import time

import httpx

from tests.e2e.helpers import (
    aimed_handoff_body,
    handback_body,
    handoff_body,
    messages_mentioning,
    payload_of,
    threads_mentioning,
)
from tests.support.broker import BrokerProcess


def test_handoff_is_delivered_cross_linked_audited_and_handed_back(broker, clean_fakes):
    ops, checkout = clean_fakes.agents["ops"], clean_fakes.agents["checkout"]
    source_thread = ops.create_thread("Ops: exception burst in checkout-api")["id"]
    body = handoff_body(source_thread)
    response = broker.client.post("/api/handoffs", json=body)

    assert response.status_code == 202, response.text
    accepted = response.json()
    handoff_id = accepted["id"]
    assert accepted["status"] == "accepted"
    assert response.headers["Location"].endswith(f"/api/handoffs/{handoff_id}")
    delivered = broker.wait_for(
        handoff_id, lambda b: b["status"] == "delivered" and b["target"].get("threadId")
    )
    # Delivery latency is measured in bench/handoff_latency.py, not asserted here.
    # exactly one thread on B, holding the whole context
    threads = threads_mentioning(checkout, handoff_id)
    assert len(threads) == 1
    thread = threads[0]
    assert delivered["target"]["threadId"] == thread["id"]
    assert delivered["target"]["threadUrl"] == (
        f"https://sre.azure.com/agents{checkout.resource_id}/views/thread/{thread['id']}"
    )
    text = thread["startMessage"]["text"]
    context = body["context"]
    assert context["title"] in text and context["summary"] in text
    assert "| SqlException | 412 |" in text
    assert f"https://sre.azure.com/agents{ops.resource_id}/views/thread/{source_thread}" in text
    payload = payload_of(text)
    assert payload["handoffId"] == handoff_id
    assert payload["context"]["evidence"][0]["rows"] == [["SqlException", 412], ["TimeoutException", 97]]
    create_calls = checkout.requests("POST", "/api/v1/threads")
    assert create_calls[-1]["json"]["startMessage"]["agent"] == "checkout-agent"
    # A's thread links to B's thread
    broker.wait_for(handoff_id, lambda _: bool(messages_mentioning(ops, source_thread, thread["id"])))
    crosslinks = messages_mentioning(ops, source_thread, handoff_id)
    assert len(crosslinks) == 1 and delivered["target"]["threadUrl"] in crosslinks[0]["text"]
    # links both ways
    from_a = broker.client.get(f"/api/threads/ops/{source_thread}/links").json()["links"]
    assert [(link["relation"], link["peer"]["agent"], link["peer"]["threadId"]) for link in from_a] == [
        ("handedOffTo", "checkout", thread["id"])
    ]
    from_b = broker.client.get("/api/links", params={"agent": checkout.resource_id, "threadId": thread["id"]})
    assert [(link["relation"], link["peer"]["threadId"]) for link in from_b.json()["links"]] == [
        ("receivedFrom", source_thread)
    ]

    # hand-back lands in A's thread and closes the loop
    back = broker.client.post(
        f"/api/handoffs/{handoff_id}/handback", json=handback_body(thread_id=thread["id"])
    )
    assert back.status_code == 202, back.text
    done = broker.wait_status(handoff_id, "handedBack")
    assert done["handbacks"][0]["delivery"] == "posted"
    posted = messages_mentioning(ops, source_thread, "Max Pool Size to 10")
    assert len(posted) == 1
    assert "Roll back 2026.11.21.3" in posted[0]["text"] and thread["id"] in posted[0]["text"]

    events = broker.client.get(f"/api/handoffs/{handoff_id}/audit").json()["events"]
    assert [e["seq"] for e in events] == list(range(1, len(events) + 1))
    types = [e["type"] for e in events]
    assert types == [
        "accepted",
        "deliveryAttempt",
        "delivered",
        "crossLinked",
        "handBackReceived",
        "handedBack",
    ]
    assert all(e["at"].endswith("Z") or "+00:00" in e["at"] for e in events)


def test_second_handback_is_kept_as_an_update(broker, clean_fakes):
    ops = clean_fakes.agents["ops"]
    source_thread = ops.create_thread("Ops: second opinion")["id"]
    handoff_id = broker.client.post("/api/handoffs", json=handoff_body(source_thread)).json()["id"]
    broker.wait_status(handoff_id, "delivered")
    first = broker.client.post(
        f"/api/handoffs/{handoff_id}/handback", json=handback_body(outcome="needsAction")
    )
    assert first.status_code == 202
    broker.wait_status(handoff_id, "handedBack")
    second = broker.client.post(
        f"/api/handoffs/{handoff_id}/handback", json=handback_body(outcome="mitigated")
    )
    assert second.status_code == 202
    final = broker.wait_for(
        handoff_id, lambda b: [h["delivery"] for h in b["handbacks"]] == ["posted", "posted"]
    )
    assert [h["outcome"] for h in final["handbacks"]] == ["needsAction", "mitigated"]
    assert len(messages_mentioning(ops, source_thread, f"[Handoff {handoff_id}] Hand-back")) == 2


def test_handoff_without_source_thread_is_delivered_and_handed_back(broker, clean_fakes):
    handoff_id = broker.client.post("/api/handoffs", json=handoff_body(None)).json()["id"]
    broker.wait_status(handoff_id, "delivered")
    assert broker.client.post(f"/api/handoffs/{handoff_id}/handback", json=handback_body()).status_code == 202
    done = broker.wait_status(handoff_id, "handedBack")
    assert done["handbacks"][0]["delivery"] == "noSourceThread"


def test_chain_a_b_c_b_a_links_every_thread(broker, clean_fakes):
    ops, checkout, payments = (clean_fakes.agents[n] for n in ("ops", "checkout", "payments"))
    arm_before = len(clean_fakes.arm.requests())
    a_thread = ops.create_thread("Ops: checkout failures")["id"]
    first = broker.client.post("/api/handoffs", json=handoff_body(a_thread)).json()["id"]
    b_thread = broker.wait_status(first, "delivered")["target"]["threadId"]
    second_body = handoff_body(b_thread, source="checkout", target="payments", parentHandoffId=first)
    second = broker.client.post("/api/handoffs", json=second_body)
    assert second.status_code == 202, second.text
    second_id = second.json()["id"]
    c_thread = broker.wait_status(second_id, "delivered")["target"]["threadId"]
    assert len(threads_mentioning(payments, second_id)) == 1

    # C hands back to B, then B hands back to A
    assert (
        broker.client.post(f"/api/handoffs/{second_id}/handback", json=handback_body("payments")).status_code
        == 202
    )
    broker.wait_status(second_id, "handedBack")
    assert len(messages_mentioning(checkout, b_thread, f"[Handoff {second_id}] Hand-back")) == 1
    assert (
        broker.client.post(f"/api/handoffs/{first}/handback", json=handback_body("checkout")).status_code
        == 202
    )
    broker.wait_status(first, "handedBack")
    assert len(messages_mentioning(ops, a_thread, f"[Handoff {first}] Hand-back")) == 1

    view = broker.client.get(f"/api/handoffs/{second_id}").json()
    assert view["parentHandoffId"] == first and view["rootHandoffId"] == first
    # the whole chain is visible from C's thread
    links = broker.client.get(f"/api/threads/payments/{c_thread}/links").json()["links"]
    seen = {
        (link["thread"]["threadId"], link["relation"], link["peer"]["threadId"], link["hops"])
        for link in links
    }
    assert (c_thread, "receivedFrom", b_thread, 1) in seen
    assert (b_thread, "receivedFrom", a_thread, 2) in seen
    # payments has no endpoint in the registry: read from ARM (by this test, or by an earlier one of the
    # session: the broker is shared) and then cached, so this chain read it at most once
    arm_calls = clean_fakes.arm.requests()[arm_before:]
    assert len(arm_calls) <= 1
    payments_reads = [r for r in clean_fakes.arm.requests() if "payments-agent" in r["path"]]
    assert payments_reads and {r["query"]["api-version"] for r in payments_reads} == {"2025-05-01-preview"}
    # payments accepts only the app-ID audience: the broker fell back to it after a 401
    audiences = [r["auth"]["aud"] for r in payments.requests() if r.get("auth")]
    assert "59f0a04a-b322-4310-adc9-39ac41e9631e" in audiences


def test_openapi_document_describes_the_api(broker):
    document = broker.client.get("/api/openapi.json").json()
    assert document["openapi"].startswith("3.1")
    assert {"/api/handoffs", "/api/handoffs/{id}", "/api/handoffs/{id}/handback", "/api/health"} <= set(
        document["paths"]
    )
    severity = document["components"]["schemas"]["HandoffContext"]["properties"]["severity"]
    assert severity["enum"] == ["Sev0", "Sev1", "Sev2", "Sev3", "Sev4"]


def test_handback_idempotency_key_posts_once(broker, clean_fakes):
    ops = clean_fakes.agents["ops"]
    source_thread = ops.create_thread("Ops: retried hand-back")["id"]
    handoff_id = broker.client.post("/api/handoffs", json=handoff_body(source_thread)).json()["id"]
    broker.wait_status(handoff_id, "delivered")
    key = {"Idempotency-Key": "checkout-findings-1"}
    url = f"/api/handoffs/{handoff_id}/handback"

    with concurrent.futures.ThreadPoolExecutor(6) as pool:
        answers = list(
            pool.map(lambda _: httpx.post(broker.url + url, json=handback_body(), headers=key), range(6))
        )

    assert sorted(a.status_code for a in answers) == [200] * 5 + [202]
    done = broker.wait_status(handoff_id, "handedBack")
    assert len(done["handbacks"]) == 1
    replay = broker.client.post(url, json=handback_body(), headers=key)
    assert replay.status_code == 200 and len(replay.json()["handbacks"]) == 1
    conflict = broker.client.post(url, json=handback_body(outcome="mitigated"), headers=key)
    assert conflict.status_code == 409 and conflict.json()["errors"][0]["field"] == "Idempotency-Key"
    time.sleep(0.5)  # a second post would have been queued by now
    assert len(messages_mentioning(ops, source_thread, f"[Handoff {handoff_id}] Hand-back")) == 1
    assert broker.audit_types(handoff_id).count("handBackReceived") == 1


def test_with_a_local_portal_thread_links_open_the_simulated_agents_pages(
    broker_env, broker, clean_fakes, tmp_path
):
    # What `make run` does: HANDOFF_PORTAL_URL names the portal stand-in in front of the simulated agents.
    env = {**broker_env, "HANDOFF_PORTAL_URL": clean_fakes.portal_url}
    with BrokerProcess.running(env, tmp_path / "host.log") as local:
        handoff_id = local.client.post("/api/handoffs", json=handoff_body(None)).json()["id"]
        broker.wait_status(handoff_id, "delivered")
        target = local.client.get(f"/api/handoffs/{handoff_id}").json()["target"]

    checkout = clean_fakes.agents["checkout"]
    assert target["threadUrl"] == clean_fakes.portal.thread_link(checkout, target["threadId"])
    page = httpx.get(target["threadUrl"], follow_redirects=True)
    assert page.status_code == 200
    assert str(page.url) == f"{checkout.endpoint}/threads/{target['threadId']}"
    assert handoff_id in page.text


def test_a_failed_handoff_leaves_the_lines_operators_watch(broker, clean_fakes):
    # infra/app/operations.bicep alerts on these lines (docs/operations.md).
    body, marker = aimed_handoff_body(None)
    clean_fakes.agents["checkout"].inject("POST", "/api/v1/threads", status=403, body_contains=marker)
    handoff_id = broker.client.post("/api/handoffs", json=body).json()["id"]
    broker.wait_status(handoff_id, "failed", timeout=20)

    lifecycle = f"handoff lifecycle: point=failed handoff={handoff_id} source=ops target=checkout latencyMs="
    poison = f"poison message: queue=handoff-deliveries-poison op=deliver handoff={handoff_id} reason="
    # The state turns "failed" before the worker logs either line, and the host's log reaches us a moment
    # later still: wait for this handoff's own lines, not for any poison line an earlier test left.
    deadline = time.monotonic() + 15
    while not (lifecycle in broker.logs() and poison in broker.logs()) and time.monotonic() < deadline:
        time.sleep(0.1)
    logs = broker.logs()
    assert lifecycle in logs
    assert poison in logs
    assert "answered 403" in logs.split(poison, 1)[1].splitlines()[0]


def test_an_unknown_source_thread_shows_as_a_warning_on_the_handoff(broker, clean_fakes):
    # The source agent has no such thread: B still gets the work, and the handoff itself says the link
    # back could not be posted (not only its audit).
    unknown = "00000000-0000-4000-8000-00000000dead"
    handoff_id = broker.client.post("/api/handoffs", json=handoff_body(unknown)).json()["id"]
    view = broker.wait_for(handoff_id, lambda v: bool(v.get("warnings")), timeout=20)
    assert view["status"] == "delivered" and view["target"]["threadId"]
    [warning] = view["warnings"]
    assert warning["code"] == "crossLinkFailed" and "404" in warning["detail"]
    assert "crossLinkFailed" in broker.audit_types(handoff_id)
