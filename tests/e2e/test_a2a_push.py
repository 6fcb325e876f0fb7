"""A partner that finishes is heard from when it finishes, not at the next 30-second poll.

The module runs its own broker with the default poll interval (30 s) against its own Azurite, so no
other broker shares its queue, and two partners served by a2a-sdk's own server components: one whose
card declares push notifications (the SDK's push sender POSTs each task update to the broker), one
without (the broker polls it adaptively).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from devserver.azurite import start_azurite
from devserver.fakes.a2a_peer import FakeA2APeer, PushDelivery
from tests.e2e.helpers import handoff_body, messages_mentioning
from tests.support.broker import BrokerProcess

FINDING = "TLS policy forces a full handshake"
COMPLETED = "TASK_STATE_COMPLETED"


@pytest.fixture(scope="module")
def pusher() -> Iterator[FakeA2APeer]:
    peer = FakeA2APeer("pusher", push=True).start()
    yield peer
    peer.stop()


@pytest.fixture(scope="module")
def poller() -> Iterator[FakeA2APeer]:
    peer = FakeA2APeer("poller").start()
    yield peer
    peer.stop()


@pytest.fixture(scope="module")
def broker30(fakes, pusher, poller, tmp_path_factory) -> Iterator[BrokerProcess]:
    """A broker with HANDOFF_POLL_INTERVAL_SECONDS at its default (30 s) and both partners registered."""
    azurite = start_azurite()
    workdir = tmp_path_factory.mktemp("push-broker")
    config = fakes.registry_config()
    config["agents"].extend(
        {"name": peer.name, "delivery": {"mode": "a2a", "url": peer.rpc_url}, "allowInsecureLocal": True}
        for peer in (pusher, poller)
    )
    (workdir / "handoff.config.json").write_text(json.dumps(config))
    env = {
        **fakes.env(),
        "HANDOFF_CONFIG": str(workdir / "handoff.config.json"),
        "HANDOFF_STORAGE": azurite.connection_string,
        "AzureWebJobsStorage": azurite.connection_string,
        "HANDOFF_ARM_ENDPOINT": fakes.arm_url,
        "HANDOFF_RATE_LIMIT_PER_MINUTE": "0",
    }
    try:
        with BrokerProcess.running(env, workdir / "host.log") as process:
            yield process
    finally:
        azurite.stop()


def _wait(condition: Callable[[], Any], timeout: float, what: str) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = condition()
        if found:
            return found
        time.sleep(0.02)
    raise AssertionError(f"not within {timeout}s: {what}")


def _hand_off(broker: BrokerProcess, ops: Any, target: str) -> tuple[str, str]:
    source_thread = ops.create_thread(f"Ops: latency, handed to {target}")["id"]
    response = broker.client.post("/api/handoffs", json=handoff_body(source_thread, target=target))
    assert response.status_code == 202, response.text
    return response.json()["id"], source_thread


def _completion(peer: FakeA2APeer, handoff_id: str) -> PushDelivery:
    return _wait(
        lambda: next((p for p in peer.pushes_to(handoff_id) if p.state == COMPLETED), None),
        15,
        "the partner's push that the task completed",
    )


def test_a_partner_that_pushes_is_heard_from_before_the_first_poll(broker30, clean_fakes, pusher) -> None:
    # The partner finishes at once (0.3 s of work): before, it was heard from at the first poll, 30 s on.
    # The waits below are far shorter than that poll, so only the push can meet them; how fast the push
    # path is belongs to the benchmark (docs/performance.md), not to a test.
    pusher.reset()
    ops = clean_fakes.agents["ops"]

    handoff_id, source_thread = _hand_off(broker30, ops, "pusher")

    pushed = _completion(pusher, handoff_id)
    _wait(lambda: messages_mentioning(ops, source_thread, FINDING), 15, "the hand-back in the source thread")
    assert pushed.status == 202
    done = broker30.wait_status(handoff_id, "handedBack", timeout=5)
    assert len(done["handbacks"]) == 1 and done["handbacks"][0]["outcome"] == "rootCauseFound"
    # Every update came with the handoff's token; the ones that do not end the task were only taken.
    assert {p.token for p in pusher.pushes_to(handoff_id)} == {pushed.token}
    assert {p.status for p in pusher.pushes_to(handoff_id) if p.state != COMPLETED} <= {200}

    # The partner delivers at least once: a repeat changes nothing.
    url = f"/api/a2a/push/{handoff_id}"
    repeat = {"statusUpdate": {"taskId": done["target"]["taskId"], "status": {"state": COMPLETED}}}
    headers = {"X-A2A-Notification-Token": pushed.token or ""}
    again = broker30.client.post(url, json=repeat, headers=headers)
    assert (again.status_code, again.json()["status"]) == (200, "ignored")
    # A body that is not a notification is a problem naming the field, never a server error.
    bad = broker30.client.post(url, json={"statusUpdate": {"taskId": "x", "status": {}}}, headers=headers)
    assert bad.status_code == 422 and bad.headers["content-type"].startswith("application/problem+json")
    assert [error["field"] for error in bad.json()["errors"]] == ["/statusUpdate/status/state"]
    time.sleep(1.0)
    assert len(messages_mentioning(ops, source_thread, FINDING)) == 1
    assert broker30.audit_types(handoff_id).count("handBackReceived") == 1


def test_a_partner_without_push_finishing_after_a_second_is_polled_before_the_30_second_interval(
    broker30, clean_fakes, poller
) -> None:
    poller.reset()
    poller.set_script(work_seconds=1.0)
    ops = clean_fakes.agents["ops"]

    handoff_id, source_thread = _hand_off(broker30, ops, "poller")

    # Well inside the 30 s interval: only the adaptive backoff (from 1 s) gets there.
    _wait(lambda: messages_mentioning(ops, source_thread, FINDING), 20, "the hand-back in the source thread")
    assert poller.pushes == []
    assert broker30.wait_status(handoff_id, "handedBack", timeout=5)["handbacks"][0]["automatic"] is False


def test_a_wrong_token_is_refused_and_nothing_changes(broker30, clean_fakes, pusher) -> None:
    pusher.reset()
    pusher.set_script(work_seconds=0.5, push_token="tampered")
    ops = clean_fakes.agents["ops"]

    handoff_id, source_thread = _hand_off(broker30, ops, "pusher")

    broker30.wait_status(handoff_id, "delivered", timeout=10)
    pushed = _completion(pusher, handoff_id)
    assert pushed.status == 401
    before = broker30.audit_types(handoff_id)
    direct = broker30.client.post(
        f"/api/a2a/push/{handoff_id}",
        json={"statusUpdate": {"taskId": "t", "status": {"state": COMPLETED}}},
        headers={"X-A2A-Notification-Token": "not-the-token"},
    )
    assert direct.status_code == 401 and direct.headers["content-type"].startswith("application/problem+json")
    missing = broker30.client.post(f"/api/a2a/push/{handoff_id}", json={"task": {}})
    assert missing.status_code == 401
    time.sleep(2.5)  # the safety-net poll is 30 s away: nothing may happen before it
    view = broker30.client.get(f"/api/handoffs/{handoff_id}").json()
    assert (view["status"], view["handbacks"]) == ("delivered", [])
    assert broker30.audit_types(handoff_id) == before
    assert messages_mentioning(ops, source_thread, FINDING) == []
