"""A2A push notifications and adaptive polling: a partner that finishes is heard from when it finishes,
not at the next 30-second poll. Push notifications are hints (the task is fetched with GetTask), taken
only with the handoff's own token, and a hand-back is recorded once however often the task is looked at."""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

import pytest

from handoff.domain.errors import Problem
from handoff.domain.messages import is_marked, marker
from handoff.domain.work import follow_up_delay
from handoff.services.a2a_push import (
    PushReceiver,
    presented_token,
    push_token,
    read_notification,
    task_state,
)
from tests.unit.conftest import BASE_URL, World, build_world, handoff_body

POLL = 30.0
TOKEN_HEADER = "X-A2A-Notification-Token"
FINDINGS = {"outcome": "rootCauseFound", "summary": "Pool too small", "rootCause": "config halved"}


@pytest.fixture
def pushing() -> World:
    """A broker whose A2A partner declares push notifications in its card."""
    world = build_world()
    world.remote.pushes = True
    return world


def _delivered(world: World) -> tuple[str, str]:
    """A handoff to the A2A partner, delivered: its id and the partner's task id."""
    view, _ = world.accept(handoff_body(world.source_thread(), target="partner"))
    world.step()
    return view.id, list(world.remote.tasks.values())[-1].task_id


def _receiver(world: World) -> PushReceiver:
    return PushReceiver(world.handoffs.context)


def _status_update(task_id: str, state: str = "TASK_STATE_COMPLETED") -> bytes:
    return json.dumps(
        {"statusUpdate": {"taskId": task_id, "contextId": "c", "status": {"state": state}}}
    ).encode()


def _push(
    world: World, handoff_id: str, body: bytes, token: str | None = None, **headers: str
) -> tuple[dict[str, str], int]:
    """``POST /api/a2a/push/{handoffId}`` with the handoff's token (or ``token``)."""
    sent = {TOKEN_HEADER: _receiver(world).token(handoff_id) if token is None else token, **headers}
    return _receiver(world).receive(handoff_id, sent, body)


def _refused(world: World, handoff_id: str, body: bytes, headers: dict[str, str]) -> Problem:
    with pytest.raises(Problem) as refused:
        _receiver(world).receive(handoff_id, headers, body)
    return refused.value


def _handback_posts(world: World, handoff_id: str) -> list[str]:
    record = world.store.get(handoff_id)
    assert record is not None and record.stored.request.source.thread_id
    needle = marker(handoff_id, "handback:1")
    return [t for t in world.agents.posted(record.stored.request.source.thread_id) if is_marked(t, needle)]


# ---------------------------------------------------------------- asking the partner to push


def test_a_partner_that_declares_push_is_asked_to_push_to_the_handoffs_url(pushing: World) -> None:
    handoff_id, _ = _delivered(pushing)
    (sent,) = pushing.remote.sent
    assert sent.push_url == f"{BASE_URL}/api/a2a/push/{handoff_id}"
    assert sent.push_token == _receiver(pushing).token(handoff_id)
    # Polling is only a safety net, at the interval.
    assert pushing.queue.messages() == [
        {"op": "a2aPoll", "handoffId": handoff_id, "attempt": 1, "push": True}
    ]
    assert pushing.queue.delays() == [POLL]


def test_the_safety_net_keeps_the_interval(pushing: World) -> None:
    handoff_id, _ = _delivered(pushing)
    pushing.step()
    assert pushing.queue.messages() == [
        {"op": "a2aPoll", "handoffId": handoff_id, "attempt": 1, "push": True}
    ]
    assert pushing.queue.delays() == [POLL]


def test_each_handoff_has_its_own_token(pushing: World) -> None:
    first, _ = _delivered(pushing)
    second, _ = _delivered(pushing)
    tokens = [sent.push_token for sent in pushing.remote.sent]
    assert len(set(tokens)) == 2 and all(len(token or "") == 43 for token in tokens)
    assert tokens == [_receiver(pushing).token(first), _receiver(pushing).token(second)]


def test_the_token_is_an_hmac_of_the_handoff_id() -> None:
    secret = bytes(32)
    assert push_token(secret, "a") == push_token(secret, "a") != push_token(secret, "b")
    assert push_token(secret, "a") != push_token(bytes([1]) * 32, "a")


def test_a_retried_delivery_that_finds_the_task_keeps_push(pushing: World) -> None:
    pushing.remote.faults.fail_next(status=None, lost_answer=True, ops={"send_message"})
    view, _ = pushing.accept(handoff_body(pushing.source_thread(), target="partner"))
    pushing.step()
    pushing.step()
    assert "deliveryRecovered" in pushing.events(view.id)
    assert pushing.queue.messages() == [{"op": "a2aPoll", "handoffId": view.id, "attempt": 1, "push": True}]


# ---------------------------------------------------------------- a notification brings the poll at once


def test_a_notification_that_the_task_completed_hands_back_at_once(pushing: World) -> None:
    handoff_id, task_id = _delivered(pushing)
    pushing.remote.advance(task_id, "COMPLETED", text="Details", data=FINDINGS)
    answer = _push(pushing, handoff_id, _status_update(task_id))
    assert answer == ({"status": "queued"}, 202)
    assert pushing.queue.sent[-1].message == {
        "op": "a2aPoll",
        "handoffId": handoff_id,
        "attempt": 1,
        "notified": True,
    }
    assert pushing.queue.sent[-1].delay == 0
    delivered_at = pushing.clock()
    pushing.run_visible()  # no clock moves: only what is due now
    record = pushing.store.get(handoff_id)
    assert record is not None and record.state.status == "handedBack"
    assert record.handbacks[0].received_at == delivered_at
    assert record.handbacks[0].request.root_cause == "config halved"
    assert len(_handback_posts(pushing, handoff_id)) == 1


def test_the_notification_body_is_not_trusted_the_task_is_fetched(pushing: World) -> None:
    handoff_id, task_id = _delivered(pushing)
    # The body says completed; the partner's task (GetTask) is still working: nothing is handed back.
    task = json.dumps({"task": {"id": task_id, "status": {"state": "TASK_STATE_COMPLETED"}, "artifacts": []}})
    assert _push(pushing, handoff_id, task.encode())[1] == 202
    pushing.run_visible()
    assert pushing.remote.ops("get_task") == ["get_task"]
    assert pushing.state(handoff_id).status == "delivered"
    # ... and the notified poll does not start a second chain of polls: the safety net carries on alone.
    assert pushing.queue.messages() == [
        {"op": "a2aPoll", "handoffId": handoff_id, "attempt": 1, "push": True}
    ]


@pytest.mark.parametrize(
    ("state", "status"),
    [
        ("TASK_STATE_FAILED", "failed"),
        ("TASK_STATE_REJECTED", "rejected"),
        ("TASK_STATE_CANCELED", "canceled"),
        ("TASK_STATE_INPUT_REQUIRED", "inputRequired"),
    ],
)
def test_other_ending_states_end_the_handoff_at_once(pushing: World, state: str, status: str) -> None:
    handoff_id, task_id = _delivered(pushing)
    pushing.remote.advance(task_id, state.removeprefix("TASK_STATE_"), status_text="because")
    assert _push(pushing, handoff_id, _status_update(task_id, state))[1] == 202
    pushing.run_visible()
    assert pushing.state(handoff_id).status == status


@pytest.mark.parametrize("state", ["TASK_STATE_WORKING", "TASK_STATE_SUBMITTED", "TASK_STATE_AUTH_REQUIRED"])
def test_a_state_that_does_not_end_the_task_changes_nothing(pushing: World, state: str) -> None:
    handoff_id, task_id = _delivered(pushing)
    sent = len(pushing.queue.sent)
    answer, status = _push(pushing, handoff_id, _status_update(task_id, state))
    assert status == 200 and answer["status"] == "ignored"
    assert len(pushing.queue.sent) == sent


def test_an_artifact_or_message_event_changes_nothing(pushing: World) -> None:
    handoff_id, task_id = _delivered(pushing)
    body = {"artifactUpdate": {"taskId": task_id, "artifact": {"artifactId": "a", "parts": []}}}
    assert _push(pushing, handoff_id, json.dumps(body).encode()) == (
        {"status": "ignored", "reason": "no state does not end the task"},
        200,
    )


@pytest.mark.parametrize(
    "body",
    [
        {"kind": "task", "id": "{task}", "contextId": "c", "status": {"state": "completed"}},
        {"kind": "status-update", "taskId": "{task}", "status": {"state": "completed"}, "final": True},
        {"task": {"id": "{task}", "status": {"state": "TASK_STATE_COMPLETED"}}},
        {"status_update": {"task_id": "{task}", "status": {"state": "TASK_STATE_COMPLETED"}}},
    ],
    ids=["v0.3 task", "v0.3 status-update", "v1.0 task", "proto field names"],
)
def test_the_forms_partners_send_are_read(pushing: World, body: dict[str, Any]) -> None:
    handoff_id, task_id = _delivered(pushing)
    pushing.remote.advance(task_id, "COMPLETED", text="done")
    text = json.dumps(body).replace("{task}", task_id)
    assert _push(pushing, handoff_id, text.encode()) == ({"status": "queued"}, 202)
    pushing.run_visible()
    assert pushing.state(handoff_id).status == "handedBack"


def test_a_bearer_token_is_accepted_too(pushing: World) -> None:
    handoff_id, task_id = _delivered(pushing)
    token = _receiver(pushing).token(handoff_id)
    answer = _receiver(pushing).receive(
        handoff_id, {"Authorization": f"Bearer {token}"}, _status_update(task_id)
    )
    assert answer[1] == 202


def test_a_notification_during_the_delivery_is_looked_at_once_it_is_recorded(pushing: World) -> None:
    # The partner ended the task before the broker wrote down its SendMessage: the look is queued, and
    # the worker looks once the delivery has let go of the handoff.
    view, _ = pushing.accept(handoff_body(pushing.source_thread(), target="partner"))
    answer = _push(pushing, view.id, _status_update("task-1"))
    assert answer == ({"status": "queued"}, 202)
    pushing.step()  # the delivery
    pushing.remote.advance(pushing.remote.only_task().task_id, "COMPLETED", text="done")
    pushing.run_visible()
    assert pushing.state(view.id).status == "handedBack"


# ---------------------------------------------------------------- exactly once


def test_repeated_notifications_hand_back_once(pushing: World) -> None:
    handoff_id, task_id = _delivered(pushing)
    pushing.remote.advance(task_id, "COMPLETED", text="done", data=FINDINGS)
    for _ in range(3):
        assert _push(pushing, handoff_id, _status_update(task_id))[1] == 202
    pushing.run()
    record = pushing.store.get(handoff_id)
    assert record is not None and len(record.handbacks) == 1
    assert len(_handback_posts(pushing, handoff_id)) == 1
    assert pushing.events(handoff_id).count("handBackReceived") == 1
    assert pushing.remote.ops("get_task") == ["get_task"]  # the later looks see the hand-back first
    # A notification after the hand-back queues nothing.
    sent = len(pushing.queue.sent)
    assert _push(pushing, handoff_id, _status_update(task_id)) == (
        {"status": "ignored", "reason": "the handoff is handedBack"},
        200,
    )
    assert len(pushing.queue.sent) == sent


def test_a_notification_racing_the_scheduled_poll_hands_back_once() -> None:
    world = build_world()  # no push: the scheduled polls come every second or so
    handoff_id, task_id = _delivered(world)
    world.remote.advance(task_id, "COMPLETED", text="done", data=FINDINGS)
    assert _push(world, handoff_id, _status_update(task_id))[1] == 202
    # Both the scheduled poll and the one the notification brought are due: both run.
    world.clock.advance(seconds=5)
    assert len(world.queue.messages("a2aPoll")) == 2
    world.run()
    record = world.store.get(handoff_id)
    assert record is not None and len(record.handbacks) == 1 and record.state.status == "handedBack"
    assert len(_handback_posts(world, handoff_id)) == 1
    assert world.events(handoff_id).count("handBackReceived") == 1
    assert world.queue.messages() == []


def test_a_notified_poll_meeting_a_busy_handoff_comes_back_in_a_second(pushing: World) -> None:
    handoff_id, task_id = _delivered(pushing)
    pushing.queue.clear()
    state = pushing.store.state(handoff_id)
    state.lease_owner, state.lease_until = "other-worker", pushing.clock() + timedelta(seconds=60)
    pushing.store.put_state(handoff_id, state)
    _push(pushing, handoff_id, _status_update(task_id))
    pushing.run_visible()
    assert pushing.queue.messages() == [
        {"op": "a2aPoll", "handoffId": handoff_id, "attempt": 1, "notified": True}
    ]
    assert pushing.queue.delays() == [1.0]


# ---------------------------------------------------------------- the token


def test_a_notification_without_a_token_is_refused_and_changes_nothing(pushing: World) -> None:
    handoff_id, task_id = _delivered(pushing)
    pushing.remote.advance(task_id, "COMPLETED", text="done")
    events, sent = pushing.events(handoff_id), len(pushing.queue.sent)
    for headers in ({}, {TOKEN_HEADER: ""}, {"Authorization": "Basic abc"}):
        problem = _refused(pushing, handoff_id, _status_update(task_id), headers)
        assert problem.status == 401
    assert pushing.events(handoff_id) == events and len(pushing.queue.sent) == sent
    assert pushing.state(handoff_id).status == "delivered"


def test_a_wrong_token_is_refused_and_changes_nothing(pushing: World) -> None:
    handoff_id, task_id = _delivered(pushing)
    other, _ = _delivered(pushing)
    pushing.remote.advance(task_id, "COMPLETED", text="done")
    events, sent = pushing.events(handoff_id), len(pushing.queue.sent)
    good = _receiver(pushing).token(handoff_id)
    for token in (good[:-1] + ("A" if good[-1] != "A" else "B"), _receiver(pushing).token(other), "é" * 43):
        problem = _refused(pushing, handoff_id, _status_update(task_id), {TOKEN_HEADER: token})
        assert problem.status == 401 and "token" in problem.detail
    assert pushing.events(handoff_id) == events and len(pushing.queue.sent) == sent


def test_a_token_is_checked_before_the_body_is_read(pushing: World) -> None:
    handoff_id, _ = _delivered(pushing)
    assert _refused(pushing, handoff_id, b"not json", {TOKEN_HEADER: "x"}).status == 401


def test_an_id_that_is_not_a_handoff_id_is_refused_without_reading_storage(pushing: World) -> None:
    asked = pushing.store.faults.count("secret")
    assert _refused(pushing, "../etc/passwd", _status_update("t"), {TOKEN_HEADER: "x"}).status == 401
    assert pushing.store.faults.count("secret") == asked


def test_the_token_header_is_read_in_any_case() -> None:
    assert presented_token({"x-a2a-notification-token": " t "}) == "t"
    assert presented_token({"AUTHORIZATION": "bearer t"}) == "t"
    assert presented_token({"Authorization": "Basic t"}) == ""


# ---------------------------------------------------------------- bad bodies and unknown handoffs


@pytest.mark.parametrize(
    ("body", "status", "field"),
    [
        (b"{not json", 400, None),
        (b"[]", 422, "/"),
        (b'{"hello": 1}', 422, "/"),
        (b'{"task": "done"}', 422, "/task"),
        (b'{"task": {"status": {"state": "TASK_STATE_COMPLETED"}}}', 422, "/task/id"),
        (
            b'{"statusUpdate": {"taskId": "", "status": {"state": "TASK_STATE_COMPLETED"}}}',
            422,
            "/statusUpdate/taskId",
        ),
        (b'{"statusUpdate": {"taskId": "t"}}', 422, "/statusUpdate/status"),
        (
            b'{"statusUpdate": {"taskId": "t", "status": {"state": "done"}}}',
            422,
            "/statusUpdate/status/state",
        ),
        (b'{"statusUpdate": {"taskId": "t", "status": {"state": 3}}}', 422, "/statusUpdate/status/state"),
        (b'{"message": []}', 422, "/message"),
    ],
)
def test_a_body_that_is_not_a_notification_is_refused_naming_the_field(
    pushing: World, body: bytes, status: int, field: str | None
) -> None:
    handoff_id, _ = _delivered(pushing)
    sent = len(pushing.queue.sent)
    with pytest.raises(Problem) as refused:
        _push(pushing, handoff_id, body)
    assert refused.value.status == status
    if field is not None:
        assert [error.field for error in refused.value.errors] == [field]
    assert len(pushing.queue.sent) == sent


def test_a_notification_about_another_task_is_refused_naming_the_field(pushing: World) -> None:
    handoff_id, _ = _delivered(pushing)
    with pytest.raises(Problem) as refused:
        _push(pushing, handoff_id, _status_update("someone-elses-task"))
    assert refused.value.status == 422
    assert [error.field for error in refused.value.errors] == ["/statusUpdate/taskId"]


def test_a_notification_for_an_unknown_handoff_is_404(pushing: World) -> None:
    unknown = "5a0e9a4e-1111-4111-8111-000000000001"
    with pytest.raises(Problem) as refused:
        _push(pushing, unknown, _status_update("t"))
    assert refused.value.status == 404
    assert [error.field for error in refused.value.errors] == ["handoffId"]


def test_a_huge_notification_is_413(pushing: World) -> None:
    handoff_id, _ = _delivered(pushing)
    with pytest.raises(Problem) as refused:
        _push(pushing, handoff_id, b'{"x": "' + b"a" * (1024 * 1024) + b'"}')
    assert refused.value.status == 413


@pytest.mark.parametrize(
    ("raw", "state"),
    [
        ("TASK_STATE_INPUT_REQUIRED", "INPUT_REQUIRED"),
        ("input-required", "INPUT_REQUIRED"),
        ("completed", "COMPLETED"),
        ("cancelled", "CANCELED"),
        ("TASK_STATE_CANCELED", "CANCELED"),
    ],
)
def test_task_states_are_read_in_both_protocol_versions(raw: str, state: str) -> None:
    assert task_state(raw) == state


def test_a_notification_names_where_its_task_id_is() -> None:
    notification = read_notification(_status_update("t-1", "TASK_STATE_FAILED"))
    assert (notification.task_id, notification.task_id_field, notification.state) == (
        "t-1",
        "/statusUpdate/taskId",
        "FAILED",
    )
    assert notification.ends_task


# ---------------------------------------------------------------- adaptive polling


def test_the_adaptive_schedule() -> None:
    times, at = [], 0.0
    while at < 200:
        at += float(int(follow_up_delay(at, POLL)))  # queue delays are whole seconds
        times.append(at)
    assert times[:16] == [1, 2, 4, 8, 13, 18, 23, 28, 33, 38, 43, 48, 53, 58, 63, 73]
    assert times[16:] == [85, 99, 115, 134, 156, 182, 212]  # then every 30 s
    assert follow_up_delay(10_000, POLL) == POLL
    assert follow_up_delay(0, 0.5) == 0.5  # never longer than the interval


@pytest.mark.parametrize("finished", [0.5, 3, 11, 30, 59.5])
def test_a_partner_that_finishes_within_a_minute_is_heard_from_within_5_seconds(finished: float) -> None:
    world = build_world()  # the default 30 s interval, no push
    handoff_id, task_id = _delivered(world)
    delivered_at = world.clock()
    done_at = delivered_at + timedelta(seconds=finished)
    while (queued := min(world.queue.pending, key=lambda q: q.visible_at or done_at)).visible_at <= done_at:
        world.step()
    world.clock.set(done_at)
    world.remote.advance(task_id, "COMPLETED", text="done")
    world.run()
    record = world.store.get(handoff_id)
    assert record is not None and record.state.status == "handedBack", queued
    assert record.handbacks[0].received_at - done_at <= timedelta(seconds=5)


def test_a_thread_watch_looks_adaptively_too(world: World) -> None:
    view, _ = world.accept(handoff_body(world.source_thread(), target="watched"))
    world.step()
    thread_id = world.state(view.id).target_thread_id or ""
    world.agents.reply(thread_id, "Looking…", complete=False)
    for _ in range(5):
        world.step()
    delays = [q.delay for q in world.queue.sent if q.message["op"] == "watch"]
    assert delays == [1.0, 1.0, 2.0, 4.0, 5.0, 5.0]
