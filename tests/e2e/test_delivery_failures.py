"""Delivery under failure: retries through the queue, no duplicate threads, final failure and poison."""

from __future__ import annotations

import json

from azure.storage.queue import QueueClient, TextBase64DecodePolicy

from tests.e2e.helpers import aimed_handoff_body, handoff_body, messages_mentioning, threads_mentioning


def test_503_twice_then_success_creates_exactly_one_thread(broker, clean_fakes):
    checkout = clean_fakes.agents["checkout"]
    body, marker = aimed_handoff_body(None)
    checkout.inject("POST", "/api/v1/threads", 503, times=2, body_contains=marker)
    handoff_id = broker.client.post("/api/handoffs", json=body).json()["id"]
    view = broker.wait_status(handoff_id, "delivered", timeout=20)
    assert len(threads_mentioning(checkout, handoff_id)) == 1
    assert view["attempts"] == 3
    assert broker.audit_types(handoff_id).count("retryScheduled") == 2


def test_thread_created_but_answer_lost_is_not_created_twice(broker, clean_fakes):
    checkout = clean_fakes.agents["checkout"]
    # B creates the thread, then the broker sees a 503: the retry must find the thread, not make another
    body, marker = aimed_handoff_body(None)
    checkout.inject("POST", "/api/v1/threads", 503, times=1, perform=True, body_contains=marker)
    handoff_id = broker.client.post("/api/handoffs", json=body).json()["id"]
    view = broker.wait_status(handoff_id, "delivered", timeout=20)
    threads = threads_mentioning(checkout, handoff_id)
    assert len(threads) == 1
    assert view["target"]["threadId"] == threads[0]["id"]
    assert "deliveryRecovered" in broker.audit_types(handoff_id)
    listing = checkout.requests("GET", "/api/v1/threads")[-1]
    assert listing["query"]["$orderby"] == "createdTimestamp desc" and listing["query"]["$top"] == "50"


def test_crosslink_is_not_posted_twice_when_its_answer_is_lost(broker, clean_fakes):
    ops = clean_fakes.agents["ops"]
    source_thread = ops.create_thread("Ops: lost answer")["id"]
    ops.inject("POST", f"/api/v1/threads/{source_thread}/messages", 500, times=1, perform=True)
    handoff_id = broker.client.post("/api/handoffs", json=handoff_body(source_thread)).json()["id"]
    broker.wait_for(handoff_id, lambda _: "crossLinked" in broker.audit_types(handoff_id), timeout=20)
    assert len(messages_mentioning(ops, source_thread, f"[Handoff {handoff_id}]")) == 1


def test_429_retry_after_is_honoured(broker, clean_fakes):
    checkout = clean_fakes.agents["checkout"]
    body, marker = aimed_handoff_body(None)
    checkout.inject("POST", "/api/v1/threads", 429, times=1, retry_after=3, body_contains=marker)
    handoff_id = broker.client.post("/api/handoffs", json=body).json()["id"]
    broker.wait_status(handoff_id, "delivered", timeout=20)
    events = broker.client.get(f"/api/handoffs/{handoff_id}/audit").json()["events"]
    retry = next(e for e in events if e["type"] == "retryScheduled")
    assert retry["details"]["delaySeconds"] >= 3
    assert "429" in retry["details"]["reason"]


def test_400_is_not_retried_and_fails_the_handoff(broker, clean_fakes):
    checkout = clean_fakes.agents["checkout"]
    body, marker = aimed_handoff_body(None)
    checkout.inject("POST", "/api/v1/threads", 400, times=1, body_contains=marker)
    handoff_id = broker.client.post("/api/handoffs", json=body).json()["id"]
    view = broker.wait_status(handoff_id, "failed", timeout=20)
    tried = [r for r in checkout.requests("POST", "/api/v1/threads") if marker in json.dumps(r["json"])]
    assert len(tried) == 1
    assert "400" in view["lastError"]
    assert broker.audit_types(handoff_id)[-1] == "deliveryFailed"


def test_persistent_outage_fails_after_last_attempt_into_poison_queue(broker, clean_fakes, azurite):
    checkout = clean_fakes.agents["checkout"]
    body, marker = aimed_handoff_body(None)
    checkout.inject("POST", "/api/v1/threads", 503, times=None, body_contains=marker)
    handoff_id = broker.client.post("/api/handoffs", json=body).json()["id"]
    view = broker.wait_status(handoff_id, "failed", timeout=30)
    checkout.clear_faults()
    assert view["attempts"] == 4  # HANDOFF_MAX_DELIVERY_ATTEMPTS in the test broker
    assert threads_mentioning(checkout, handoff_id) == []
    events = broker.client.get(f"/api/handoffs/{handoff_id}/audit").json()["events"]
    assert events[-1]["type"] == "deliveryFailed"
    assert (
        "503" in events[-1]["details"]["reason"]
        and "gave up after 4 attempts" in events[-1]["details"]["reason"]
    )
    poison = QueueClient.from_connection_string(
        azurite.connection_string, "handoff-deliveries-poison", message_decode_policy=TextBase64DecodePolicy()
    )
    # Other tests park messages too: look through all of them (each comes back after 2 s).
    parked = [
        json.loads(m.content) for m in poison.receive_messages(messages_per_page=32, visibility_timeout=2)
    ]
    assert any(m.get("handoffId") == handoff_id and "gave up" in m["reason"] for m in parked)


def test_no_secret_reaches_audit_or_logs(broker, clean_fakes):
    handoff_id = broker.client.post("/api/handoffs", json=handoff_body(None)).json()["id"]
    broker.wait_status(handoff_id, "delivered")
    audit = broker.client.get(f"/api/handoffs/{handoff_id}/audit").text
    secret = clean_fakes.identity_header
    tokens = [r["headers"].get("authorization", "") for r in clean_fakes.agents["checkout"].requests()]
    assert all(t in ("", "Bearer ***") for t in tokens)  # the fake itself never keeps tokens
    for text in (audit, broker.logs()):
        assert secret not in text
        assert "eyJ" not in text  # no JWT
        assert "AccountKey" not in text
