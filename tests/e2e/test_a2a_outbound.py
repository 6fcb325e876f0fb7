"""Handoffs to a partner agent over A2A: a real a2a-sdk server receives them, its tasks come back."""

from __future__ import annotations

import pytest

from devserver.fakes.a2a_peer import CONTRACT_EXTENSION
from tests.e2e.helpers import contract_errors, handoff_body, messages_mentioning


def _hand_off_to_partner(broker, ops) -> tuple[str, str, dict]:
    source_thread = ops.create_thread("Ops: latency on payments")["id"]
    body = handoff_body(source_thread, target="partner")
    response = broker.client.post("/api/handoffs", json=body)
    assert response.status_code == 202, response.text
    return response.json()["id"], source_thread, body


def test_partner_task_result_is_handed_back_into_the_source_thread(broker, clean_fakes, clean_peer):
    ops = clean_fakes.agents["ops"]

    handoff_id, source_thread, body = _hand_off_to_partner(broker, ops)

    done = broker.wait_status(handoff_id, "handedBack", timeout=20)
    executions = clean_peer.executions_for(handoff_id)
    assert len(executions) == 1
    execution = executions[0]
    # the text part is the same start message an SRE Agent gets; the data part is structured
    assert execution.text.startswith(f"[Handoff {handoff_id}] {body['context']['title']}")
    assert execution.data["context"]["title"] == body["context"]["title"]
    assert execution.data["handbackUrl"].endswith(f"/api/handoffs/{handoff_id}/handback")
    assert execution.context_id == done["rootHandoffId"] == handoff_id
    assert done["target"]["taskId"] == execution.task_id
    handback = done["handbacks"][0]
    assert (handback["outcome"], handback["automatic"], handback["delivery"]) == (
        "rootCauseFound",
        False,
        "posted",
    )
    assert handback["rootCause"] == clean_peer.script.result["rootCause"]
    posted = messages_mentioning(ops, source_thread, "TLS policy forces a full handshake")
    assert len(posted) == 1 and "Re-enable session resumption" in posted[0]["text"]
    types = broker.audit_types(handoff_id)
    assert types[:3] == ["accepted", "deliveryAttempt", "delivered"]
    assert {"crossLinked", "handBackReceived", "handedBack"} <= set(types)


def test_partner_answer_without_a_handback_shape_is_reported(broker, clean_fakes, clean_peer):
    clean_peer.set_script(behaviour="completeText")

    handoff_id, _, _ = _hand_off_to_partner(broker, clean_fakes.agents["ops"])

    done = broker.wait_status(handoff_id, "handedBack", timeout=20)
    assert done["handbacks"][0]["outcome"] == "reported"
    assert done["handbacks"][0]["summary"] == clean_peer.script.result["summary"]


def test_partner_receives_the_handoff_once_when_its_first_answer_is_lost(broker, clean_fakes, clean_peer):
    # The peer handles the SendMessage (its task starts), then the connection drops before the
    # broker reads the answer: the broker must find that task instead of starting a second one.
    clean_peer.inject("POST", "/a2a", perform=True, drop=True)

    handoff_id, _, _ = _hand_off_to_partner(broker, clean_fakes.agents["ops"])

    done = broker.wait_status(handoff_id, "handedBack", timeout=30)
    executions = clean_peer.executions_for(handoff_id)
    assert len(executions) == 1
    assert done["target"]["taskId"] == executions[0].task_id
    types = broker.audit_types(handoff_id)
    assert types.count("deliveryAttempt") == 1
    assert "retryScheduled" in types and "deliveryRecovered" in types


@pytest.mark.parametrize(
    ("behaviour", "status", "event", "said"),
    [
        ("inputRequired", "inputRequired", "remoteInputRequired", "prod-eu or prod-us"),
        ("reject", "rejected", "remoteRejected", "Out of scope for this agent"),
        ("fail", "failed", "remoteFailed", "APM backend timed out"),
    ],
)
def test_partner_task_that_ends_without_result_is_reported_to_the_source(
    broker, clean_fakes, clean_peer, behaviour, status, event, said
):
    clean_peer.set_script(behaviour=behaviour)
    ops = clean_fakes.agents["ops"]

    handoff_id, source_thread, _ = _hand_off_to_partner(broker, ops)

    done = broker.wait_status(handoff_id, status, timeout=20)
    assert done["handbacks"] == []
    assert said in done["lastError"]
    notices = [
        m for m in messages_mentioning(ops, source_thread, handoff_id) if f"**Status:** {status}" in m["text"]
    ]
    assert len(notices) == 1 and said in notices[0]["text"]
    events = broker.client.get(f"/api/handoffs/{handoff_id}/audit").json()["events"]
    ended = [e for e in events if e["type"] == event]
    assert len(ended) == 1 and ended[0]["details"]["taskId"] == done["target"]["taskId"]
    assert len(clean_peer.executions_for(handoff_id)) == 1


def test_partner_gets_the_contract_extension_and_its_tagged_handback_is_read(broker, clean_fakes, clean_peer):
    # The partner answers with a hand-back tagged with the contract's extension; no untagged data part.
    clean_peer.set_script(
        handback_form="contract",
        result={
            "schemaId": "handoffContext",
            "schemaVersion": "1.0",
            "agent": "partner",
            "outcome": "mitigated",
            "summary": "Rolled the gateway's TLS policy back",
            "rootCause": "Session resumption was disabled by the new policy",
            "recommendedActions": ["Keep session resumption on", "Alert on handshake rate"],
        },
    )
    ops = clean_fakes.agents["ops"]

    handoff_id, source_thread, _ = _hand_off_to_partner(broker, ops)

    done = broker.wait_status(handoff_id, "handedBack", timeout=20)
    (execution,) = clean_peer.executions_for(handoff_id)
    assert execution.extensions == {CONTRACT_EXTENSION}  # the A2A-Extensions header activated it
    assert execution.contract is not None and contract_errors("handoff-request", execution.contract) == []
    assert execution.contract["context"] == execution.data["context"]
    assert execution.contract["source"]["threadId"] == source_thread
    handback = done["handbacks"][0]
    assert (handback["outcome"], handback["rootCause"]) == (
        "mitigated",
        "Session resumption was disabled by the new policy",
    )
    assert handback["recommendedActions"] == ["Keep session resumption on", "Alert on handshake rate"]
    assert len(messages_mentioning(ops, source_thread, "Session resumption was disabled")) == 1
