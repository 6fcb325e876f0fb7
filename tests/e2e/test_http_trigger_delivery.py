"""Delivery through an agent's HTTP trigger: placeholders filled, thread id read, no duplicates on retry."""

from __future__ import annotations

from tests.e2e.helpers import handback_body, handoff_body, messages_mentioning, threads_mentioning


def test_trigger_delivery_fills_placeholders_and_links_threads(broker, clean_fakes):
    ops, inventory = clean_fakes.agents["ops"], clean_fakes.agents["inventory"]
    source_thread = ops.create_thread("Ops: stock sync lag")["id"]
    body = handoff_body(source_thread, target="inventory")
    handoff_id = broker.client.post("/api/handoffs", json=body).json()["id"]
    view = broker.wait_status(handoff_id, "delivered")
    threads = threads_mentioning(inventory, handoff_id)
    assert len(threads) == 1
    thread = threads[0]
    assert thread["title"] == "HTTP Trigger: handoff-intake"
    prompt = thread["startMessage"]["text"]
    assert prompt.startswith(f"Handoff {handoff_id} from ops (Sev2): {body['context']['title']}")
    # the nested {"execution": {"threadId"}} answer was understood
    assert view["target"]["threadId"] == thread["id"]
    sent = inventory.requests("POST", "/api/v1/httptriggers/trigger/*")[-1]["json"]
    assert sent["handbackUrl"].endswith(f"/api/handoffs/{handoff_id}/handback")
    assert sent["context"]["evidence"][0]["rows"][0] == ["SqlException", 412]
    assert sent["message"].startswith(f"[Handoff {handoff_id}]")
    broker.wait_for(handoff_id, lambda _: bool(messages_mentioning(ops, source_thread, thread["id"])))
    assert (
        broker.client.post(
            f"/api/handoffs/{handoff_id}/handback", json=handback_body("inventory")
        ).status_code
        == 202
    )
    broker.wait_status(handoff_id, "handedBack")


def test_trigger_retry_after_lost_answer_does_not_start_a_second_run(broker, clean_fakes):
    inventory = clean_fakes.agents["inventory"]
    inventory.inject("POST", "/api/v1/httptriggers/trigger/*", 502, times=1, perform=True)
    handoff_id = broker.client.post("/api/handoffs", json=handoff_body(None, target="inventory")).json()["id"]
    view = broker.wait_status(handoff_id, "delivered", timeout=20)
    threads = threads_mentioning(inventory, handoff_id)
    assert len(threads) == 1
    assert view["target"]["threadId"] == threads[0]["id"]
    assert "deliveryRecovered" in broker.audit_types(handoff_id)
