"""The egress policy end to end: what the broker reads back from an agent is capped, and a call it
refuses is a final failure, not a retry loop. (Address and scheme rules are unit-tested with an
injected resolver: end-to-end tests only ever talk to loopback.)"""

from __future__ import annotations

import pytest

from tests.e2e.helpers import aimed_handoff_body, handoff_body, messages_mentioning

CAP = 4 * 1024 * 1024  # HANDOFF_MAX_RESPONSE_BYTES default


@pytest.mark.attack("urls")
def test_an_agent_answer_over_the_size_cap_fails_the_delivery_once_and_for_all(broker, clean_fakes):
    checkout = clean_fakes.agents["checkout"]
    huge = {"id": "9b1de8e4-5a5e-4a0b-9a5e-0c7f4f1f2c3d", "padding": "x" * (CAP + 1024)}
    request, marker = aimed_handoff_body(None)
    checkout.inject("POST", "/api/v1/threads", status=200, body=huge, times=1, body_contains=marker)

    handoff_id = broker.client.post("/api/handoffs", json=request).json()["id"]

    failed = broker.wait_status(handoff_id, "failed", timeout=20)
    assert f"response larger than {CAP} bytes" in failed["lastError"]
    assert failed["attempts"] == 1 and "retryScheduled" not in broker.audit_types(handoff_id)


@pytest.mark.attack("urls")
def test_a_cross_link_answer_over_the_cap_marks_only_the_cross_link_failed(broker, clean_fakes):
    ops = clean_fakes.agents["ops"]
    source = ops.create_thread("Ops: oversized answer")["id"]
    oversized = {"p": "y" * (CAP + 1)}
    ops.inject("POST", f"/api/v1/threads/{source}/messages", 200, body=oversized, times=1, perform=True)

    handoff_id = broker.client.post("/api/handoffs", json=handoff_body(source)).json()["id"]

    broker.wait_for(handoff_id, lambda _: "crossLinkFailed" in broker.audit_types(handoff_id), timeout=20)
    view = broker.client.get(f"/api/handoffs/{handoff_id}").json()
    assert view["status"] == "delivered" and "response larger than" in view["lastError"]
    # the message was posted once (the answer was what was refused) and not retried
    assert len(messages_mentioning(ops, source, f"[Handoff {handoff_id}]")) == 1
