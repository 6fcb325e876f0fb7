"""Delivery: the worker opens the target's thread, cross-links it into the source thread, and retries,
gives up, recovers and takes turns (the per-handoff lease) as the queue semantics require."""

from __future__ import annotations

import uuid
from datetime import timedelta
from typing import Any

import pytest

from handoff.domain.messages import is_handoff_thread, is_marked, marker
from handoff.domain.models import HandoffRequest
from handoff.domain.records import HandoffState
from handoff.ports import StorageUnavailable
from tests.unit.conftest import (
    OPERATOR,
    OPS,
    World,
    build_world,
    handback_body,
    handoff_body,
    run_during,
    seen_at_state_writes,
)


def _accepted(world: World, **extra: Any) -> str:
    view, _ = world.accept(handoff_body(world.source_thread(), **extra))
    return view.id


def _source_thread(world: World, handoff_id: str) -> str:
    record = world.store.get(handoff_id)
    assert record is not None and record.stored.request.source.thread_id
    return record.stored.request.source.thread_id


# ---------------------------------------------------------------- the happy path


def test_delivery_opens_one_thread_on_the_target_with_the_start_message(world: World) -> None:
    handoff_id = _accepted(world)
    world.run()
    (thread,) = world.agents.threads_of("checkout")
    assert is_handoff_thread(handoff_id, thread.title, thread.messages[0].text)
    state = world.state(handoff_id)
    assert (state.status, state.target_thread_id, state.attempts) == ("delivered", thread.id, 1)
    assert state.delivered_at == world.clock()
    assert state.lease_until is None and state.lease_owner is None  # the worker let go


def test_delivery_is_audited_in_order(world: World) -> None:
    handoff_id = _accepted(world)
    world.run()
    assert world.events(handoff_id) == ["accepted", "deliveryAttempt", "delivered", "crossLinked"]
    delivered = world.event(handoff_id, "delivered")
    assert delivered["threadId"] == world.state(handoff_id).target_thread_id
    assert delivered["threadUrl"].startswith("https://sre.azure.com")
    assert world.event(handoff_id, "deliveryAttempt") == {"attempt": 1, "mode": "thread"}


def test_the_source_thread_gets_one_cross_link_message(world: World) -> None:
    handoff_id = _accepted(world)
    world.run()
    source_thread = _source_thread(world, handoff_id)
    (posted,) = world.agents.posted(source_thread)
    assert is_marked(posted, marker(handoff_id, "crosslink"))
    state = world.state(handoff_id)
    assert state.crosslink == "posted" and state.crosslink_message_id
    assert world.event(handoff_id, "crossLinked")["messageId"] == state.crosslink_message_id


def test_both_threads_are_linked_to_each_other(world: World) -> None:
    handoff_id = _accepted(world)
    world.run()
    source_thread, target_thread = _source_thread(world, handoff_id), world.state(handoff_id).target_thread_id
    assert target_thread is not None
    (out,) = world.store.links_of("ops", source_thread)
    (back,) = world.store.links_of("checkout", target_thread)
    assert (out.relation, out.peer_agent, out.peer_thread_id) == ("handedOffTo", "checkout", target_thread)
    assert (back.relation, back.peer_agent, back.peer_thread_id) == ("receivedFrom", "ops", source_thread)


def test_the_links_are_written_while_the_cross_link_is_posted(world: World) -> None:
    handoff_id = _accepted(world)
    post, add_links, overlapped = run_during(world.agents.post_message, world.store.add_links)
    world.agents.post_message, world.store.add_links = post, add_links  # type: ignore[method-assign]
    world.run()
    assert overlapped == [True, True]
    assert world.state(handoff_id).crosslink == "posted"
    assert len(world.store.links_of("ops", _source_thread(world, handoff_id))) == 1


def test_the_links_are_written_before_the_write_that_records_the_delivery(world: World) -> None:
    # A crash after that write leaves nothing to retry: the links must be there by then.
    handoff_id = _accepted(world)
    links_at_each_write = seen_at_state_writes(
        world,
        world.store,
        "add_links",
        lambda: len(world.store.links_of("ops", _source_thread(world, handoff_id))),
    )
    world.run()
    assert world.state(handoff_id).status == "delivered"
    assert links_at_each_write[-1] == 1


@pytest.mark.parametrize("cross_link", ["posted", "refused"])
def test_links_the_side_could_not_write_are_written_again_before_the_delivery_is_recorded(
    world: World, cross_link: str
) -> None:
    handoff_id = _accepted(world)
    if cross_link == "refused":
        world.agents.faults.fail_next(status=404, ops={"post_message"})  # permanent: fails alone
    world.store.faults.fail("add_links")  # the side's write only
    world.run()
    state = world.state(handoff_id)
    assert (state.status, state.crosslink, state.attempts) == (
        "delivered",
        cross_link.replace("refused", "failed"),
        1,
    )
    assert state.target_thread_id is not None
    (back,) = world.store.links_of("checkout", state.target_thread_id)
    assert back.peer_thread_id == _source_thread(world, handoff_id)
    assert "retryScheduled" not in world.events(handoff_id)
    assert len(world.agents.posted(_source_thread(world, handoff_id))) == (cross_link == "posted")


def test_links_that_still_cannot_be_written_leave_the_step_to_a_retry_that_repeats_nothing(
    world: World,
) -> None:
    # The cross-link is in A's thread already when the step fails: the retry finds it by its marker.
    handoff_id = _accepted(world)
    world.store.faults.fail("add_links", times=2)  # the side's write, and the one made again after it
    world.run()
    state = world.state(handoff_id)
    assert (state.status, state.crosslink) == ("delivered", "posted")
    assert state.target_thread_id is not None
    assert len(world.store.links_of("checkout", state.target_thread_id)) == 1
    assert world.events(handoff_id).count("delivered") == 1
    assert world.event(handoff_id, "deliveryRecovered") == {"threadId": state.target_thread_id}
    assert world.event(handoff_id, "crossLinked")["recovered"] is True
    assert len(world.agents.threads_of("checkout")) == 1
    assert len(world.agents.posted(_source_thread(world, handoff_id))) == 1


def test_the_lifecycle_listener_is_told_of_the_delivery(world: World) -> None:
    handoff_id = _accepted(world)
    world.run()
    thread_id = world.state(handoff_id).target_thread_id
    assert world.lifecycle == [(handoff_id, "delivered", {"threadId": thread_id})]


def test_without_a_source_thread_nothing_is_cross_linked(world: World) -> None:
    view, _ = world.accept(handoff_body())
    world.run()
    state = world.state(view.id)
    assert (state.status, state.crosslink) == ("delivered", "noSourceThread")
    assert "crossLinked" not in world.events(view.id)
    assert world.store.links_of("checkout", state.target_thread_id or "") == []


def test_running_a_delivered_handoff_again_changes_nothing(world: World) -> None:
    handoff_id = _accepted(world)
    world.run()
    events = world.events(handoff_id)
    world.process({"op": "deliver", "handoffId": handoff_id, "attempt": 1})
    assert world.events(handoff_id) == events
    assert len(world.agents.threads_of("checkout")) == 1
    assert len(world.agents.posted(_source_thread(world, handoff_id))) == 1


def test_an_http_trigger_agent_gets_the_structured_payload(world: World) -> None:
    view, _ = world.accept(handoff_body(world.source_thread(), target="inventory"))
    world.run()
    assert world.agents.ops("fire_trigger") == ["fire_trigger"] and world.agents.ops("create_thread") == []
    (thread,) = world.agents.threads_of("inventory")
    assert thread.trigger_payload is not None and thread.trigger_payload["handoffId"] == view.id
    assert world.state(view.id).target_thread_id == thread.id
    assert world.event(view.id, "deliveryAttempt")["mode"] == "httpTrigger"


def test_a_trigger_that_does_not_name_its_thread_still_delivers(world: World) -> None:
    world.agents.trigger_answers_thread = False
    view, _ = world.accept(handoff_body(world.source_thread(), target="inventory"))
    world.run()
    state = world.state(view.id)
    assert (state.status, state.target_thread_id, state.crosslink) == ("delivered", None, "posted")
    assert world.store.links_of("ops", _source_thread(world, view.id)) == []


def test_the_start_message_shows_earlier_investigations_of_the_same_resources(world: World) -> None:
    earlier = world.hand_off()
    world.hand_back(earlier)
    world.run()
    later = world.hand_off(target="payments")
    (thread,) = world.agents.threads_of("payments")
    section = thread.messages[0].text.split("## Seen before")[1].split("\n## ")[0]
    assert earlier in section and later not in section


@pytest.mark.attack("authorization")
def test_an_alert_shows_only_the_routed_agent_s_own_earlier_investigations(world: World) -> None:
    # An alert's source is no agent: every team's alert investigations share it. Whoever can post an
    # alert naming a resource must not pull another team's findings into the routed agent's thread.
    def alert(target: str) -> str:
        request = HandoffRequest.model_validate(handoff_body(source="azure-monitor", target=target))
        record, _ = world.intake.accept_system(request, str(uuid.uuid4()), OPERATOR)
        world.run()
        return record.id

    checkouts = alert("checkout")
    world.hand_back(checkouts, handback_body(rootCause="checkout's own root cause"))
    world.run()
    alert("payments")
    (thread,) = world.agents.threads_of("payments")
    assert "## Seen before" not in thread.messages[0].text
    alert("checkout")
    later = world.agents.threads_of("checkout")[-1].messages[0].text
    assert checkouts in later.split("## Seen before")[1]  # the routed agent's own investigation is shown


def test_a_history_that_cannot_be_read_does_not_stop_delivery(world: World) -> None:
    world.history.faults.outage()
    handoff_id = world.hand_off()
    assert world.state(handoff_id).status == "delivered"
    assert "## Seen before" not in world.agents.threads_of("checkout")[0].messages[0].text


# ---------------------------------------------------------------- retries


def test_a_busy_agent_is_retried_no_earlier_than_its_retry_after(world: World) -> None:
    handoff_id = _accepted(world)
    world.agents.faults.fail_next(status=429, retry_after=120, ops={"create_thread"})
    started = world.clock()
    world.run_visible()
    assert world.queue.messages() == [{"op": "deliver", "handoffId": handoff_id, "attempt": 2}]
    assert world.queue.delays() == [120]
    state = world.state(handoff_id)
    assert state.status == "accepted" and "429" in (state.last_error or "")
    assert state.retry_at == started + timedelta(seconds=120)
    scheduled = world.event(handoff_id, "retryScheduled")
    assert scheduled["op"] == "deliver" and scheduled["attempt"] == 1 and scheduled["delaySeconds"] == 120.0


def test_retry_after_beyond_the_backoff_cap_is_still_honoured() -> None:
    world = build_world(retry_max_seconds=300)
    _accepted(world)
    world.agents.faults.fail_next(status=503, retry_after=1000, ops={"create_thread"})
    world.run_visible()
    assert world.queue.delays() == [1000]


def test_without_retry_after_the_backoff_is_exponential_with_jitter() -> None:
    world = build_world(retry_base_seconds=10, retry_max_seconds=1000)
    _accepted(world)
    world.agents.faults.fail_next(times=3, status=503, ops={"create_thread"})
    delays = []
    for _ in range(3):
        world.step()
        delays.append(world.queue.delays()[-1])
    for attempt, delay in enumerate(delays, start=1):
        full = 10 * 2 ** (attempt - 1)
        assert full / 2 <= delay <= full


def test_the_retry_looks_for_the_thread_before_opening_one(world: World) -> None:
    handoff_id = _accepted(world)
    world.agents.faults.fail_next(status=503, ops={"create_thread"})
    world.run()
    assert world.agents.ops().count("create_thread") == 2
    (find,) = [call for call in world.agents.calls if call.op == "find_thread"]
    attempted = world.state(handoff_id).create_attempted_at
    assert attempted is not None and find.since == attempted - timedelta(seconds=300)
    assert world.state(handoff_id).status == "delivered" and world.state(handoff_id).attempts == 2


def test_a_thread_created_by_an_attempt_whose_answer_was_lost_is_found_not_duplicated(world: World) -> None:
    handoff_id = _accepted(world)
    world.agents.faults.fail_next(status=None, lost_answer=True, ops={"create_thread"})
    world.run()
    (thread,) = world.agents.threads_of("checkout")
    assert world.state(handoff_id).target_thread_id == thread.id
    assert world.event(handoff_id, "deliveryRecovered") == {"threadId": thread.id}
    assert world.events(handoff_id).count("delivered") == 1


def test_a_cross_link_posted_by_an_attempt_whose_answer_was_lost_is_not_posted_again(world: World) -> None:
    handoff_id = _accepted(world)
    world.agents.faults.fail_next(status=None, lost_answer=True, ops={"post_message"})
    world.run()
    assert len(world.agents.posted(_source_thread(world, handoff_id))) == 1
    assert world.event(handoff_id, "crossLinked")["recovered"] is True
    assert world.state(handoff_id).crosslink == "posted"


def test_after_the_last_attempt_the_handoff_fails_and_its_message_is_poisoned() -> None:
    world = build_world(max_delivery_attempts=3)
    handoff_id = _accepted(world)
    world.agents.faults.fail_next(times=10, status=503, ops={"create_thread"})
    world.run()
    state = world.state(handoff_id)
    assert (
        state.status == "failed"
        and state.last_error == "create_thread answered 503 (gave up after 3 attempts)"
    )
    assert world.events(handoff_id).count("retryScheduled") == 2
    assert world.event(handoff_id, "deliveryFailed") == {"reason": state.last_error, "how": "failed"}
    assert world.queue.poison == [
        {"op": "deliver", "handoffId": handoff_id, "attempt": 3, "reason": state.last_error}
    ]
    assert (handoff_id, "failed", {"reason": state.last_error}) in world.lifecycle


def test_a_permanent_refusal_fails_at_once(world: World) -> None:
    handoff_id = _accepted(world)
    world.agents.faults.fail_next(status=403, ops={"create_thread"})
    world.run()
    state = world.state(handoff_id)
    assert state.status == "failed" and state.last_error == "create_thread answered 403"
    assert "retryScheduled" not in world.events(handoff_id)
    assert world.queue.poison[0]["reason"] == "create_thread answered 403"


def test_a_failed_handoff_is_not_delivered_by_a_late_message(world: World) -> None:
    handoff_id = _accepted(world)
    world.agents.faults.fail_next(status=403, ops={"create_thread"})
    world.run()
    world.process({"op": "deliver", "handoffId": handoff_id, "attempt": 1})
    assert world.state(handoff_id).status == "failed" and world.agents.threads_of("checkout") == []


def test_a_cross_link_that_cannot_be_posted_is_audited_and_the_delivery_stands(world: World) -> None:
    handoff_id = _accepted(world)
    world.agents.faults.fail_next(status=404, ops={"post_message"})
    world.run()
    state = world.state(handoff_id)
    assert (state.status, state.crosslink) == ("delivered", "failed")
    assert world.event(handoff_id, "crossLinkFailed") == {
        "reason": "post_message answered 404",
        "how": "failed",
    }
    assert "deliveryFailed" not in world.events(handoff_id)
    assert world.queue.poison[0]["op"] == "deliver"
    assert not any(point == "failed" for _, point, _ in world.lifecycle)
    # Whoever reads the handoff sees it, not only the audit.
    view = world.queries.get(handoff_id, OPS)
    assert [(w.code, w.detail) for w in view.warnings] == [("crossLinkFailed", "post_message answered 404")]


def test_a_handoff_whose_cross_link_worked_has_no_warning(world: World) -> None:
    handoff_id = _accepted(world)
    world.run()
    assert world.state(handoff_id).crosslink == "posted"
    assert world.queries.get(handoff_id, OPS).warnings == []


# ---------------------------------------------------------------- the lease


def _lease(world: World, handoff_id: str, seconds: float, owner: str = "other-worker") -> None:
    def take(state: HandoffState) -> None:
        state.lease_until = world.clock() + timedelta(seconds=seconds)
        state.lease_owner = owner

    world.store.update_state(handoff_id, take)


def test_a_handoff_another_worker_holds_is_requeued_for_later(world: World) -> None:
    handoff_id = _accepted(world)
    world.queue.clear()
    _lease(world, handoff_id, 60)
    world.process({"op": "deliver", "handoffId": handoff_id, "attempt": 1})
    assert world.queue.messages() == [{"op": "deliver", "handoffId": handoff_id, "attempt": 1}]
    assert world.queue.delays() == [15]
    assert world.agents.calls == [] and world.state(handoff_id).lease_owner == "other-worker"


def test_a_follow_up_meeting_a_busy_handoff_comes_back_after_a_second(world: World) -> None:
    # As soon as a first poll would (a step holds the lease briefly), not after the 30 s interval.
    handoff_id = world.hand_off(target="watched")
    world.queue.clear()
    _lease(world, handoff_id, 60)
    world.process({"op": "watch", "handoffId": handoff_id, "attempt": 1})
    assert world.queue.messages() == [{"op": "watch", "handoffId": handoff_id, "attempt": 1}]
    assert world.queue.delays() == [1.0]


def test_a_busy_follow_up_waits_at_least_a_second() -> None:
    world = build_world(poll_interval_seconds=0)
    handoff_id = _accepted(world, target="partner")
    world.step()  # delivered; the first poll is queued
    world.queue.clear()
    _lease(world, handoff_id, 60)
    world.process({"op": "a2aPoll", "handoffId": handoff_id, "attempt": 1})
    assert world.queue.delays() == [1.0]


def test_a_second_worker_meeting_a_delivery_in_progress_requeues_it(world: World) -> None:
    handoff_id = _accepted(world)
    world.queue.clear()
    second = build_world(over=world)  # another instance, same storage and queue
    message = {"op": "deliver", "handoffId": handoff_id, "attempt": 1}

    def meanwhile(op: str) -> None:
        if op == "create_thread":
            world.agents.on_call = None
            second.process(message)

    world.agents.on_call = meanwhile
    world.process(message)
    assert world.queue.messages() == [message] and world.queue.delays() == [15]
    world.run()
    assert len(world.agents.threads_of("checkout")) == 1
    assert world.events(handoff_id).count("delivered") == 1


def test_a_poll_meeting_the_delivery_that_scheduled_it_comes_back_after_a_second(world: World) -> None:
    handoff_id = _accepted(world, target="partner")
    second = build_world(over=world)

    def meanwhile(op: str) -> None:
        if op == "post_message":  # the cross-link, after the first poll was queued
            world.agents.on_call = None
            poll = world.queue.take()
            assert poll is not None
            second.process(poll.message)

    world.agents.on_call = meanwhile
    world.step()
    assert world.queue.messages() == [{"op": "a2aPoll", "handoffId": handoff_id, "attempt": 1}]
    assert world.queue.delays() == [1.0]
    assert world.remote.ops("get_task") == []


def test_an_expired_lease_is_taken_over(world: World) -> None:
    handoff_id = _accepted(world)
    _lease(world, handoff_id, -1)
    world.run()
    assert world.state(handoff_id).status == "delivered"


def test_a_worker_that_lost_its_lease_stops_before_calling_the_agent(world: World) -> None:
    handoff_id = _accepted(world)
    world.store.update_state(handoff_id, lambda s: setattr(s, "create_attempted", True))
    world.queue.clear()

    def stall(op: str) -> None:
        if op == "find_thread":  # the worker stalls past its lease; another takes the handoff
            world.clock.advance(world.settings.delivery_lease_seconds + 1)
            _lease(world, handoff_id, 60, owner="thief")

    world.agents.on_call = stall
    world.process({"op": "deliver", "handoffId": handoff_id, "attempt": 1})
    state = world.state(handoff_id)
    assert world.agents.ops("create_thread") == []
    assert (state.lease_owner, state.attempts, state.status) == ("thief", 0, "accepted")


# ---------------------------------------------------------------- messages that cannot be run


def test_a_message_for_a_handoff_that_does_not_exist_is_dropped(world: World) -> None:
    world.process({"op": "deliver", "handoffId": "00000000-0000-4000-8000-00000000dead", "attempt": 1})
    assert world.agents.calls == [] and world.queue.sent == [] and world.queue.poison == []


def test_a_step_that_keeps_crashing_is_failed_before_the_host_poisons_it(world: World) -> None:
    handoff_id = _accepted(world)
    world.store.faults.fail("get", times=world.settings.max_dequeue_count)
    world.run()
    state = world.state(handoff_id)
    assert state.status == "failed" and state.last_error == "unexpected error: StorageUnavailable"
    assert world.event(handoff_id, "deliveryFailed")["how"] == "poisoned"
    assert world.queue.poison == [{"op": "deliver", "handoffId": handoff_id, "attempt": 1}]
    assert [f.dequeue_count for f in world.queue.failures] == [1, 2, 3, 4, 5]


def test_a_crash_before_the_last_dequeue_leaves_the_handoff_to_the_next_run(world: World) -> None:
    handoff_id = _accepted(world)
    world.store.faults.fail("get", times=2)
    world.run()
    assert world.state(handoff_id).status == "delivered" and world.queue.poison == []


# ---------------------------------------------------------------- crashes between two writes


def _update_state_calls(scenario: Any) -> int:
    """How many state writes ``scenario(world)`` makes on a fresh broker."""
    dry = build_world()
    scenario(dry)
    return dry.store.faults.count("update_state")


def _deliver_without_source_thread(world: World) -> None:
    world.accept(handoff_body())
    world.run()


def test_a_crash_after_the_delivered_audit_does_not_audit_it_twice(world: World) -> None:
    handoff_id = _accepted(world)
    # the state writes of a delivery: the lease with the attempt, then delivered and cross-linked with
    # their audit events: the second one is lost (the thread and the cross-link are made)
    world.store.faults.fail("update_state", after=1)
    world.run()
    state = world.state(handoff_id)
    assert state.status == "delivered" and len(world.agents.threads_of("checkout")) == 1
    assert world.events(handoff_id).count("delivered") == 1
    assert "deliveryRecovered" in world.events(handoff_id)
    assert world.events(handoff_id).count("crossLinked") == 1
    assert world.event(handoff_id, "crossLinked")["recovered"] is True
    assert len(world.agents.posted(_source_thread(world, handoff_id))) == 1
    assert len(world.queue.failures) == 1


def test_a_lease_that_cannot_be_released_runs_out_by_itself(world: World) -> None:
    writes = _update_state_calls(_deliver_without_source_thread)
    # the last write (delivered, letting go of the lease) and the release after the step failed are lost
    world.store.faults.fail("update_state", after=writes - 1, times=2)
    view, _ = world.accept(handoff_body())
    world.queue.clear()
    message = {"op": "deliver", "handoffId": view.id, "attempt": 1}
    with pytest.raises(StorageUnavailable):
        world.process(message)
    state = world.state(view.id)
    assert state.status == "accepted" and state.lease_owner is not None
    assert state.lease_until is not None and state.lease_until > world.clock()
    world.process(message, 2)  # the host's retry meets the lease: it comes back later
    assert world.queue.delays() == [15] and len(world.agents.threads_of("checkout")) == 1
    world.clock.advance(world.settings.delivery_lease_seconds + 1)
    world.process(message, 3)
    state = world.state(view.id)
    assert state.status == "delivered" and state.lease_owner is None
    assert len(world.agents.threads_of("checkout")) == 1


# ---------------------------------------------------------------- starting from a copy


def _reads_of_a_delivery() -> int:
    dry = build_world()
    dry.accept(handoff_body(dry.source_thread()))
    dry.run()
    return dry.store.faults.count("get")


def test_an_audit_event_written_as_a_delivery_starts_does_not_start_it_again(world: World) -> None:
    handoff_id = _accepted(world)
    # Another writer appends an event between the step's read and its first write: the state is as the
    # step saw it, so the write is only tried again, and the step goes on.
    world.store.interleave(handoff_id, lambda s: None)
    world.run()
    state = world.state(handoff_id)
    assert state.status == "delivered" and len(world.agents.threads_of("checkout")) == 1
    assert world.store.occ_retries == 1 and world.store.faults.count("get") == _reads_of_a_delivery()


def test_a_state_changed_as_a_delivery_starts_makes_it_start_again_from_the_stored_one(world: World) -> None:
    handoff_id = _accepted(world)
    world.store.interleave(handoff_id, lambda s: setattr(s, "last_error", "someone else's write"))
    world.run()
    state = world.state(handoff_id)
    assert state.status == "delivered" and len(world.agents.threads_of("checkout")) == 1
    assert world.events(handoff_id).count("deliveryAttempt") == 1 and state.attempts == 1
    assert world.store.faults.count("get") == _reads_of_a_delivery() + 1  # the stored handoff, read again
