"""Automatic hand-back: the broker watches B's thread and hands B's final reply back when B does not."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.e2e.helpers import handback_body, handoff_body, messages_mentioning

FINAL = "Final answer: the connection pool is exhausted by the retry storm; roll back 2026.11.21.3."


@pytest.fixture
def checkout(clean_fakes) -> Iterator:
    """The checkout agent, with simulated replies switched off again afterwards."""
    agent = clean_fakes.agents["checkout"]
    yield agent
    agent.set_auto_reply(False)


def _hand_off(broker, ops, auto: dict) -> tuple[str, str]:
    source_thread = ops.create_thread("Ops: exception burst")["id"]
    response = broker.client.post("/api/handoffs", json=handoff_body(source_thread, autoHandback=auto))
    assert response.status_code == 202, response.text
    return response.json()["id"], source_thread


def _events(broker, handoff_id: str) -> list[dict]:
    return broker.client.get(f"/api/handoffs/{handoff_id}/audit").json()["events"]


def test_final_reply_is_handed_back_when_b_never_hands_back(broker, clean_fakes, checkout):
    checkout.set_auto_reply(True, text=FINAL, delay=0.5)
    ops = clean_fakes.agents["ops"]

    handoff_id, source_thread = _hand_off(broker, ops, {"afterMinutes": 0})

    done = broker.wait_status(handoff_id, "handedBack", timeout=20)
    (handback,) = done["handbacks"]
    assert (handback["automatic"], handback["outcome"], handback["summary"]) == (True, "reported", FINAL)
    assert handback["threadId"] == done["target"]["threadId"]
    posted = messages_mentioning(ops, source_thread, "roll back 2026.11.21.3")
    assert len(posted) == 1 and "handed back automatically" in posted[0]["text"]
    types = [e["type"] for e in _events(broker, handoff_id)]
    assert types.index("watchStarted") < types.index("replyComplete") < types.index("handBackReceived")
    received = next(e for e in _events(broker, handoff_id) if e["type"] == "handBackReceived")
    assert received["details"]["automatic"] is True


def test_explicit_handback_within_the_wait_wins(broker, clean_fakes, checkout):
    checkout.set_auto_reply(True, text=FINAL, delay=0.2)
    ops = clean_fakes.agents["ops"]

    # B's reply completes quickly, but the broker waits 6 s before handing it back itself
    handoff_id, _ = _hand_off(broker, ops, {"afterMinutes": 0.1})
    delivered = broker.wait_for(
        handoff_id, lambda b: b["status"] == "delivered" and b["target"].get("threadId")
    )
    back = broker.client.post(
        f"/api/handoffs/{handoff_id}/handback", json=handback_body(thread_id=delivered["target"]["threadId"])
    )
    assert back.status_code == 202, back.text

    broker.wait_for(handoff_id, lambda _: "watchEnded" in broker.audit_types(handoff_id), timeout=20)
    # a hand-back that meets another worker's lease waits out the delivery back-off (15 s)
    done = broker.wait_status(handoff_id, "handedBack", timeout=40)
    assert [(h["automatic"], h["outcome"]) for h in done["handbacks"]] == [(False, "rootCauseFound")]
    ended = next(e for e in _events(broker, handoff_id) if e["type"] == "watchEnded")
    assert ended["details"]["reason"] == "handedBack"


@pytest.mark.parametrize("kind", ["approval", "userQuestion"])
def test_pending_approval_or_question_stops_the_watch_and_tells_a(broker, clean_fakes, checkout, kind):
    ops = clean_fakes.agents["ops"]
    handoff_id, source_thread = _hand_off(broker, ops, {"afterMinutes": 0, "maxWatchMinutes": 30})
    thread_id = broker.wait_for(handoff_id, lambda b: b["target"].get("threadId"))["target"]["threadId"]

    if kind == "approval":
        checkout.add_approval(thread_id, "Restart checkout-api pods", "kubectl rollout restart")
        said, waits = "Restart checkout-api pods", "waiting for an approval"
    else:
        checkout.add_user_question(thread_id, "Can I scale the database to 8 vCores?", options=["Yes", "No"])
        said, waits = "scale the database to 8 vCores", "waiting for an answer"

    broker.wait_for(handoff_id, lambda _: "watchStopped" in broker.audit_types(handoff_id), timeout=20)
    stopped = next(e for e in _events(broker, handoff_id) if e["type"] == "watchStopped")
    assert stopped["details"]["reason"] == kind and said in stopped["details"]["text"]
    notices = messages_mentioning(ops, source_thread, waits)
    assert len(notices) == 1 and said in notices[0]["text"] and thread_id in notices[0]["text"]
    view = broker.client.get(f"/api/handoffs/{handoff_id}").json()
    assert (view["status"], view["handbacks"]) == ("delivered", [])


def test_bad_auto_handback_settings_are_refused_naming_the_field(broker, clean_fakes):
    body = handoff_body(None, autoHandback={"afterMinutes": -1, "maxWatchMinutes": 0})

    response = broker.client.post("/api/handoffs", json=body)

    assert response.status_code == 422
    fields = sorted(error["field"] for error in response.json()["errors"])
    assert fields == ["/autoHandback/afterMinutes", "/autoHandback/maxWatchMinutes"]
