"""Follow-up work after delivery: A2A tasks polled to their end, and SRE Agent threads watched for an
automatic hand-back. Both reschedule themselves through the queue with the right delay."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from handoff.domain.messages import is_marked, marker
from handoff.services.a2a_followup import a2a_message_id
from tests.unit.conftest import WATCHED, World, build_world, handback_body, handoff_body

POLL = 30.0  # the default HANDOFF_POLL_INTERVAL_SECONDS
FIRST = 1.0  # the first look after delivery (adaptive polling)


def _accepted(world: World, target: str, **extra: Any) -> str:
    view, _ = world.accept(handoff_body(world.source_thread(), target=target, **extra))
    return view.id


def _source_thread(world: World, handoff_id: str) -> str:
    record = world.store.get(handoff_id)
    assert record is not None and record.stored.request.source.thread_id
    return record.stored.request.source.thread_id


def _posts(world: World, handoff_id: str, step: str) -> list[str]:
    needle = marker(handoff_id, step)
    return [
        text for text in world.agents.posted(_source_thread(world, handoff_id)) if is_marked(text, needle)
    ]


# ---------------------------------------------------------------- A2A delivery


def test_an_a2a_target_gets_the_handoff_as_a_message_and_is_polled(world: World) -> None:
    handoff_id = _accepted(world, "partner")
    world.step()
    (sent,) = world.remote.sent
    assert sent.message_id == a2a_message_id(handoff_id) and sent.context_id == handoff_id
    assert sent.data["handoffId"] == handoff_id and handoff_id in sent.text
    task = world.remote.only_task()
    state = world.state(handoff_id)
    assert (state.status, state.remote_task_id, state.remote_state) == (
        "delivered",
        task.task_id,
        "SUBMITTED",
    )
    assert world.event(handoff_id, "delivered") == {"taskId": task.task_id, "taskState": "SUBMITTED"}
    assert world.event(handoff_id, "deliveryAttempt") == {"attempt": 1, "mode": "a2a"}
    assert (sent.push_url, sent.push_token) == (None, None)  # the partner's card declares no push
    assert world.queue.messages() == [{"op": "a2aPoll", "handoffId": handoff_id, "attempt": 1}]
    assert world.queue.delays() == [FIRST]


def test_the_source_thread_is_told_about_the_a2a_task(world: World) -> None:
    handoff_id = _accepted(world, "partner")
    world.step()
    (post,) = _posts(world, handoff_id, "crosslink")
    assert f"A2A task {world.remote.only_task().task_id}" in post
    assert world.state(handoff_id).crosslink == "posted"


def test_a_task_that_has_already_ended_is_polled_at_once(world: World) -> None:
    world.remote.initial_state = "COMPLETED"
    _accepted(world, "partner")
    world.step()
    assert world.queue.delays("a2aPoll") == [0]


def test_a_task_still_working_is_polled_again_soon(world: World) -> None:
    handoff_id = _accepted(world, "partner")
    world.step()
    task = world.remote.only_task()
    world.remote.advance(task.task_id, "WORKING")
    world.step()  # a second after delivery
    assert world.event(handoff_id, "remoteTaskState") == {"taskId": task.task_id, "state": "WORKING"}
    assert world.state(handoff_id).remote_state == "WORKING"
    assert world.queue.messages() == [{"op": "a2aPoll", "handoffId": handoff_id, "attempt": 1}]
    assert world.queue.delays() == [FIRST]
    world.step()  # unchanged: nothing audited
    assert world.events(handoff_id).count("remoteTaskState") == 1


def test_a_completed_task_becomes_one_hand_back(world: World) -> None:
    handoff_id = _accepted(world, "partner")
    world.step()
    task = world.remote.only_task()
    result = {"outcome": "rootCauseFound", "summary": "Pool too small", "rootCause": "config halved"}
    world.remote.advance(task.task_id, "COMPLETED", text="Details follow", data=result)
    world.run()
    record = world.store.get(handoff_id)
    assert record is not None
    (handback,) = record.handbacks
    assert (handback.request.outcome, handback.request.summary, handback.agent) == (
        "rootCauseFound",
        "Pool too small",
        "partner",
    )
    assert record.state.status == "handedBack" and len(_posts(world, handoff_id, "handback:1")) == 1
    (received,) = [e for e in world.store.events(handoff_id) if e.type == "handBackReceived"]
    assert received.actor == "a2a:partner"
    assert world.queue.messages() == [] and world.remote.ops("get_task") == ["get_task"]


def test_a_completed_task_without_a_result_hands_back_its_text(world: World) -> None:
    handoff_id = _accepted(world, "partner")
    world.step()
    world.remote.advance(world.remote.only_task().task_id, "COMPLETED", text="Nothing wrong found")
    world.run()
    record = world.store.get(handoff_id)
    assert record is not None
    assert (record.handbacks[0].request.outcome, record.handbacks[0].request.summary) == (
        "reported",
        "Nothing wrong found",
    )


def test_a_result_that_is_not_a_valid_hand_back_is_handed_back_as_text(world: World) -> None:
    handoff_id = _accepted(world, "partner")
    world.step()
    bogus = {"outcome": "solved-it", "summary": "x"}
    world.remote.advance(world.remote.only_task().task_id, "COMPLETED", text="Plain findings", data=bogus)
    world.run()
    record = world.store.get(handoff_id)
    assert record is not None
    assert (record.handbacks[0].request.outcome, record.handbacks[0].request.summary) == (
        "reported",
        "Plain findings",
    )


def test_a_peer_that_answers_with_a_message_hands_back_at_once(world: World) -> None:
    world.remote.answer_with_message = "Already fixed: restarted the pool"
    handoff_id = _accepted(world, "partner")
    world.run()
    record = world.store.get(handoff_id)
    assert record is not None and record.handbacks[0].request.summary == "Already fixed: restarted the pool"
    assert record.state.status == "handedBack" and world.remote.ops("get_task") == []
    assert world.queue.sent[-1].message["op"] != "a2aPoll"


def test_a_failed_task_fails_the_handoff_and_says_so_in_the_source_thread(world: World) -> None:
    handoff_id = _accepted(world, "partner")
    world.step()
    task = world.remote.only_task()
    world.remote.advance(task.task_id, "FAILED", status_text="database unreachable")
    world.run()
    state = world.state(handoff_id)
    assert (state.status, state.last_error) == ("failed", "database unreachable")
    assert world.event(handoff_id, "remoteFailed") == {
        "taskId": task.task_id,
        "detail": "database unreachable",
    }
    (post,) = _posts(world, handoff_id, "remote:failed")
    assert "database unreachable" in post
    assert world.queue.messages() == []


def test_a_task_that_needs_input_is_reported_as_such(world: World) -> None:
    handoff_id = _accepted(world, "partner")
    world.step()
    world.remote.advance(world.remote.only_task().task_id, "INPUT_REQUIRED", status_text="which region?")
    world.run()
    assert world.state(handoff_id).status == "inputRequired"
    assert "remoteInputRequired" in world.events(handoff_id)
    assert len(_posts(world, handoff_id, "remote:inputRequired")) == 1


def test_polling_ends_after_the_maximum_time() -> None:
    world = build_world(a2a_max_poll_minutes=2)
    handoff_id = _accepted(world, "partner")
    world.run()
    state = world.state(handoff_id)
    assert state.status == "failed" and state.last_error == "the A2A task did not finish within 2 minutes"
    # at 1, 2, 4, 8, 13, 18 ... 58 s, then 63, 73, 85, 99, 115 and 134 s (queue delays are whole seconds)
    assert world.remote.ops("get_task") == ["get_task"] * 20


def test_a_closed_handoff_is_not_polled(world: World) -> None:
    handoff_id = _accepted(world, "partner")
    world.step()
    world.remote.advance(world.remote.only_task().task_id, "COMPLETED", text="done")
    world.run()
    world.process({"op": "a2aPoll", "handoffId": handoff_id, "attempt": 1})
    assert world.remote.ops("get_task") == ["get_task"]


def test_a_send_whose_answer_was_lost_finds_the_peers_task_instead_of_sending_again(world: World) -> None:
    handoff_id = _accepted(world, "partner")
    world.remote.faults.fail_next(status=None, lost_answer=True, ops={"send_message"})
    world.step()
    world.step()
    task = world.remote.only_task()
    assert len(world.remote.sent) == 1
    assert world.event(handoff_id, "deliveryRecovered") == {"taskId": task.task_id}
    assert world.state(handoff_id).remote_task_id == task.task_id


def test_a_peer_that_cannot_list_tasks_gets_the_same_message_id_again(world: World) -> None:
    world.remote.lists_tasks = False
    handoff_id = _accepted(world, "partner")
    world.remote.faults.fail_next(status=None, lost_answer=True, ops={"send_message"})
    world.step()
    world.step()
    assert [sent.message_id for sent in world.remote.sent] == [a2a_message_id(handoff_id)] * 2
    assert world.remote.ops("find_task") == ["find_task"]
    assert world.state(handoff_id).status == "delivered"


def test_a_poll_that_fails_for_now_is_retried_with_backoff(world: World) -> None:
    handoff_id = _accepted(world, "partner")
    world.step()
    world.remote.faults.fail_next(status=429, retry_after=45, ops={"get_task"})
    world.step()
    assert world.queue.messages() == [{"op": "a2aPoll", "handoffId": handoff_id, "attempt": 2}]
    assert world.queue.delays() == [45]
    scheduled = world.event(handoff_id, "retryScheduled")
    assert scheduled["op"] == "a2aPoll" and scheduled["delaySeconds"] == 45.0


def test_a_peer_that_stays_unreachable_fails_the_handoff() -> None:
    world = build_world(max_delivery_attempts=2)
    handoff_id = _accepted(world, "partner")
    world.step()
    world.remote.faults.fail_next(times=5, status=503, ops={"get_task"})
    world.run()
    state = world.state(handoff_id)
    reason = "get_task answered 503 (gave up after 2 attempts)"
    assert (state.status, state.last_error) == ("failed", reason)
    assert world.event(handoff_id, "remoteFailed") == {"reason": reason, "how": "unreachable"}


def test_a_task_the_peer_forgot_fails_the_handoff_at_once(world: World) -> None:
    handoff_id = _accepted(world, "partner")
    world.step()
    world.remote.tasks.clear()
    world.run()
    assert world.state(handoff_id).status == "failed"
    assert world.event(handoff_id, "remoteFailed")["how"] == "unreachable"
    assert "retryScheduled" not in world.events(handoff_id)


# ---------------------------------------------------------------- watching an SRE Agent thread


def _watched(world: World, target: str = "watched", **extra: Any) -> tuple[str, str]:
    """A handoff delivered to an agent with automatic hand-back; its id and the target's thread."""
    handoff_id = _accepted(world, target, **extra)
    world.step()
    thread_id = world.state(handoff_id).target_thread_id
    assert thread_id is not None
    return handoff_id, thread_id


def test_delivery_to_an_agent_with_automatic_hand_back_starts_a_watch(world: World) -> None:
    handoff_id, thread_id = _watched(world)
    assert world.state(handoff_id).watch == "watching"
    assert world.event(handoff_id, "watchStarted") == {
        "threadId": thread_id,
        "afterMinutes": 5,
        "maxWatchMinutes": 60,
    }
    assert world.queue.messages() == [{"op": "watch", "handoffId": handoff_id, "attempt": 1}]
    assert world.queue.delays() == [FIRST]


def test_the_handoff_can_ask_for_automatic_hand_back_itself(world: World) -> None:
    handoff_id, _ = _watched(world, "checkout", autoHandback={"afterMinutes": 1})
    assert world.event(handoff_id, "watchStarted")["maxWatchMinutes"] == 240


def test_without_automatic_hand_back_nothing_is_watched(world: World) -> None:
    handoff_id = world.hand_off()
    assert world.state(handoff_id).watch is None and "watchStarted" not in world.events(handoff_id)


def test_a_complete_reply_is_handed_back_once_after_the_quiet_time(world: World) -> None:
    handoff_id, thread_id = _watched(world)
    world.agents.reply(thread_id, "Root cause: the pool size was halved; rolled back.")
    world.step()
    assert world.event(handoff_id, "replyComplete") == {"threadId": thread_id}
    completed_at = world.state(handoff_id).reply_complete_at
    assert completed_at == world.clock() and world.state(handoff_id).handbacks == {}
    world.run()
    record = world.store.get(handoff_id)
    assert record is not None
    (handback,) = record.handbacks
    assert handback.automatic and handback.request.outcome == "reported"
    assert handback.request.summary == "Root cause: the pool size was halved; rolled back."
    assert handback.received_at - completed_at >= timedelta(minutes=5)
    assert record.state.watch == "done" and record.state.status == "handedBack"
    assert world.event(handoff_id, "handBackReceived")["automatic"] is True
    assert len(_posts(world, handoff_id, "handback:1")) == 1
    assert world.queue.messages() == []


def test_while_the_reply_is_streaming_the_watch_waits(world: World) -> None:
    handoff_id, thread_id = _watched(world)
    world.agents.reply(thread_id, "Looking…", complete=False)
    world.step()  # a second after delivery
    assert "replyComplete" not in world.events(handoff_id)
    assert world.queue.delays() == [FIRST]


def test_when_the_agent_writes_again_the_quiet_time_restarts(world: World) -> None:
    handoff_id, thread_id = _watched(world)
    world.agents.reply(thread_id, "First answer")
    world.step()
    assert world.state(handoff_id).reply_complete_at is not None
    world.agents.reply(thread_id, "More…", complete=False)
    world.step()
    assert world.state(handoff_id).reply_complete_at is None


def test_a_pending_approval_stops_the_watch_and_tells_the_source_thread(world: World) -> None:
    handoff_id, thread_id = _watched(world)
    ref = world.agents.ask_approval(thread_id, "Restart checkout-api")
    world.step()
    assert world.state(handoff_id).watch == "stopped"
    assert world.event(handoff_id, "watchStopped") == {"reason": "approval", "text": "Restart checkout-api"}
    assert len(_posts(world, handoff_id, f"watch:{ref}")) == 1
    assert world.queue.messages() == []


def test_a_question_to_the_user_stops_the_watch_too(world: World) -> None:
    handoff_id, thread_id = _watched(world)
    world.agents.ask_question(thread_id, "Scale out to 10 instances?")
    world.step()
    assert world.event(handoff_id, "watchStopped")["reason"] == "userQuestion"


def test_a_watch_without_an_answer_expires(world: World) -> None:
    handoff_id, _ = _watched(world)
    world.run()
    assert world.state(handoff_id).watch == "stopped"
    assert world.event(handoff_id, "watchExpired") == {"maxWatchMinutes": 60}
    assert world.state(handoff_id).status == "delivered"


def test_a_manual_hand_back_ends_the_watch(world: World) -> None:
    handoff_id, _ = _watched(world)
    world.hand_back(handoff_id, handback_body(agent="watched"), WATCHED)
    world.run()
    assert world.event(handoff_id, "watchEnded") == {"reason": "handedBack"}
    assert world.state(handoff_id).watch == "done"
    record = world.store.get(handoff_id)
    assert record is not None and len(record.handbacks) == 1


def test_a_watch_that_cannot_read_the_thread_stops_after_its_attempts() -> None:
    world = build_world(max_delivery_attempts=2)
    handoff_id, _ = _watched(world)
    world.agents.faults.fail_next(times=5, status=503, ops={"list_messages"})
    world.run()
    state = world.state(handoff_id)
    assert (state.watch, state.status) == ("stopped", "delivered")
    stopped = world.event(handoff_id, "watchStopped")
    assert stopped == {"reason": "error", "detail": "list_messages answered 503 (gave up after 2 attempts)"}


def test_an_automatic_hand_back_whose_post_fails_is_posted_by_its_queued_message(world: World) -> None:
    handoff_id, thread_id = _watched(world)
    world.agents.reply(thread_id, "Found it: pool size")
    world.step()
    world.clock.advance(minutes=5)
    world.agents.faults.fail_next(status=503, ops={"post_message"})
    world.run()
    assert len(_posts(world, handoff_id, "handback:1")) == 1
    assert world.state(handoff_id).handbacks[1].status == "posted"


def test_a_stopped_watch_does_not_look_again(world: World) -> None:
    handoff_id, thread_id = _watched(world)
    world.agents.ask_approval(thread_id, "Restart")
    world.step()
    looked = len(world.agents.ops("list_messages"))
    world.process({"op": "watch", "handoffId": handoff_id, "attempt": 1})
    assert len(world.agents.ops("list_messages")) == looked


def test_without_a_source_thread_a_pending_question_only_stops_the_watch(world: World) -> None:
    view, _ = world.accept(handoff_body(target="watched"))
    world.step()
    thread_id = world.state(view.id).target_thread_id or ""
    world.agents.ask_question(thread_id, "Which region?")
    world.step()
    assert world.event(view.id, "watchStopped")["reason"] == "userQuestion"
    assert world.agents.ops("post_message") == []
