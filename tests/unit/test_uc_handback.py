"""Hand-back: the target's findings are stored once, indexed, and posted once into the source thread."""

from __future__ import annotations

import pytest

from handoff.domain.errors import BadRequest, Conflict, Forbidden, NotFound, ServiceUnavailable
from handoff.domain.messages import is_marked, marker
from handoff.ports import StorageUnavailable
from tests.unit.conftest import (
    CHECKOUT,
    OPS,
    PAYMENTS,
    World,
    build_world,
    handback_body,
    handoff_body,
    run_during,
    seen_at_state_writes,
)


def _source_thread(world: World, handoff_id: str) -> str:
    record = world.store.get(handoff_id)
    assert record is not None and record.stored.request.source.thread_id
    return record.stored.request.source.thread_id


def _handback_posts(world: World, handoff_id: str, seq: int = 1) -> list[str]:
    needle = marker(handoff_id, f"handback:{seq}")
    return [
        text for text in world.agents.posted(_source_thread(world, handoff_id)) if is_marked(text, needle)
    ]


# ---------------------------------------------------------------- taking a hand-back


def test_a_hand_back_is_stored_audited_and_queued(world: World) -> None:
    handoff_id = world.hand_off()
    view, new = world.hand_back(handoff_id)
    assert new is True
    (handback,) = view.handbacks
    assert (handback.seq, handback.outcome, handback.delivery) == (1, "mitigated", "pending")
    assert world.event(handoff_id, "handBackReceived") == {
        "seq": 1,
        "agent": "checkout",
        "outcome": "mitigated",
    }
    assert world.queue.messages() == [{"op": "handback", "handoffId": handoff_id, "seq": 1, "attempt": 1}]


def test_the_hand_back_is_posted_into_the_source_thread_once(world: World) -> None:
    handoff_id = world.hand_off()
    world.hand_back(handoff_id)
    world.run()
    (post,) = _handback_posts(world, handoff_id)
    assert "Rolled back deployment" in post
    state = world.state(handoff_id)
    assert state.status == "handedBack" and state.handed_back_at == world.clock()
    assert state.handbacks[1].status == "posted" and state.handbacks[1].message_id
    handed_back = world.event(handoff_id, "handedBack")
    assert handed_back["seq"] == 1 and handed_back["sourceThreadId"] == _source_thread(world, handoff_id)
    assert (handoff_id, "handedBack", {"seq": 1}) in world.lifecycle


def test_the_same_hand_back_message_run_twice_posts_once(world: World) -> None:
    handoff_id = world.hand_off()
    world.hand_back(handoff_id)
    message = {"op": "handback", "handoffId": handoff_id, "seq": 1, "attempt": 1}
    world.process(message)
    world.process(message)
    assert len(_handback_posts(world, handoff_id)) == 1
    assert world.events(handoff_id).count("handedBack") == 1


def test_the_hand_back_is_indexed_in_the_history(world: World) -> None:
    handoff_id = world.hand_off()
    world.hand_back(handoff_id)
    world.run()
    (entry,) = world.history.entries()
    assert (entry["HandoffId"], entry["Outcome"], entry["Seq"]) == (handoff_id, "mitigated", 1)


def test_a_second_hand_back_gets_the_next_number(world: World) -> None:
    handoff_id = world.hand_off()
    world.hand_back(handoff_id)
    world.run()
    view, new = world.hand_back(handoff_id, handback_body(outcome="rootCauseFound"))
    world.run()
    assert new and [hb.seq for hb in view.handbacks] == [1, 2]
    assert len(_handback_posts(world, handoff_id, 2)) == 1


def test_secrets_in_a_hand_back_are_cut_and_counted(world: World) -> None:
    handoff_id = world.hand_off()
    view, _ = world.hand_back(
        handoff_id, handback_body(summary="rotated, new key AccountKey=" + "abcd1234" * 3 + "==")
    )
    assert "abcd1234abcd1234" not in view.handbacks[0].summary
    assert world.event(handoff_id, "handBackReceived")["redactions"]


def test_without_a_source_thread_the_hand_back_is_kept_but_not_posted(world: World) -> None:
    view, _ = world.accept(handoff_body())
    world.run()
    world.hand_back(view.id)
    world.run()
    state = world.state(view.id)
    assert state.status == "handedBack" and state.handbacks[1].status == "noSourceThread"
    assert world.event(view.id, "handedBack") == {"seq": 1, "posted": False}
    assert len(world.history.entries()) == 1


# ---------------------------------------------------------------- idempotency


def test_same_key_and_body_is_one_hand_back_and_one_message(world: World) -> None:
    handoff_id = world.hand_off()
    _, new_first = world.hand_back(handoff_id, key="findings-1")
    again, new_again = world.hand_back(handoff_id, key="findings-1")
    assert (new_first, new_again) == (True, False)
    assert [hb.seq for hb in again.handbacks] == [1]
    assert world.queue.messages("handback") == [
        {"op": "handback", "handoffId": handoff_id, "seq": 1, "attempt": 1}
    ]
    world.run()
    assert len(_handback_posts(world, handoff_id)) == 1
    assert world.events(handoff_id).count("handBackReceived") == 1


def test_same_key_with_another_body_is_409_naming_the_key(world: World) -> None:
    handoff_id = world.hand_off()
    world.hand_back(handoff_id, key="findings-1")
    with pytest.raises(Conflict) as info:
        world.hand_back(handoff_id, handback_body(summary="something else"), key="findings-1")
    assert [e.field for e in info.value.errors] == ["Idempotency-Key"]
    record = world.store.get(handoff_id)
    assert record is not None and len(record.handbacks) == 1


@pytest.mark.parametrize("key", ["", "x" * 201, "line\nbreak"])
def test_an_unusable_key_is_400(world: World, key: str) -> None:
    handoff_id = world.hand_off()
    with pytest.raises(BadRequest):
        world.hand_back(handoff_id, key=key)


def test_a_hand_back_whose_write_failed_stored_nothing_and_its_replay_records_it(world: World) -> None:
    # The hand-back, its pending delivery and its audit event are one write: all or nothing.
    handoff_id = world.hand_off()
    world.store.faults.fail("add_handback")
    with pytest.raises(StorageUnavailable):
        world.hand_back(handoff_id, key="k")
    record = world.store.get(handoff_id)
    assert record is not None and record.handbacks == [] and record.state.handbacks == {}
    assert "handBackReceived" not in world.events(handoff_id)
    _, new = world.hand_back(handoff_id, key="k")
    assert new is True
    assert world.queue.messages("handback") == [
        {"op": "handback", "handoffId": handoff_id, "seq": 1, "attempt": 1}
    ]
    world.run()
    assert len(_handback_posts(world, handoff_id)) == 1
    assert world.events(handoff_id).count("handBackReceived") == 1


def test_a_replay_of_a_hand_back_whose_enqueue_failed_leaves_it_to_the_sweeper(world: World) -> None:
    handoff_id = world.hand_off()
    world.queue.faults.fail("send")
    with pytest.raises(ServiceUnavailable):
        world.hand_back(handoff_id, key="k")
    _, new = world.hand_back(handoff_id, key="k")
    assert new is False and world.queue.messages("handback") == []
    assert world.state(handoff_id).handbacks[1].status == "pending"
    world.clock.advance(world.settings.sweep_after_seconds + 1)
    world.sweep()
    world.run()
    assert len(_handback_posts(world, handoff_id)) == 1


def test_a_failed_enqueue_is_503_and_the_sweeper_posts_the_hand_back(world: World) -> None:
    handoff_id = world.hand_off()
    world.queue.faults.fail("send")
    with pytest.raises(ServiceUnavailable):
        world.hand_back(handoff_id)
    world.clock.advance(world.settings.sweep_after_seconds + 1)
    world.sweep()
    world.run()
    assert len(_handback_posts(world, handoff_id)) == 1


# ---------------------------------------------------------------- who may hand back, and when


def test_a_hand_back_before_delivery_is_409(world: World) -> None:
    view, _ = world.accept(handoff_body())
    with pytest.raises(Conflict, match="only after delivery"):
        world.hand_back(view.id)


def test_only_the_target_agent_may_hand_back(world: World) -> None:
    handoff_id = world.hand_off()
    with pytest.raises(Forbidden) as info:
        world.hand_back(handoff_id, handback_body(agent="ops"), OPS)
    assert [e.field for e in info.value.errors] == ["/agent"]


def test_a_caller_may_hand_back_only_as_the_agent_it_is(world: World) -> None:
    handoff_id = world.hand_off()
    with pytest.raises(Forbidden):
        world.hand_back(handoff_id, handback_body(agent="checkout"), OPS)


def test_a_caller_outside_the_chain_cannot_even_see_the_handoff(world: World) -> None:
    handoff_id = world.hand_off()
    with pytest.raises(NotFound):
        world.hand_back(handoff_id, handback_body(agent="payments"), PAYMENTS)


def test_a_hand_back_on_a_failed_handoff_is_409(world: World) -> None:
    view, _ = world.accept(handoff_body())
    world.agents.faults.fail_next(status=400, ops={"create_thread"})
    world.run()
    with pytest.raises(Conflict):
        world.hand_back(view.id, caller=CHECKOUT)


# ---------------------------------------------------------------- posting failures


def test_a_post_that_fails_for_now_is_retried_and_lands_once(world: World) -> None:
    handoff_id = world.hand_off()
    world.hand_back(handoff_id)
    world.agents.faults.fail_next(status=502, ops={"post_message"})
    world.run()
    assert len(_handback_posts(world, handoff_id)) == 1
    assert world.event(handoff_id, "retryScheduled")["op"] == "handback"
    assert world.state(handoff_id).handbacks[1].status == "posted"


def test_a_post_whose_answer_was_lost_is_found_not_repeated(world: World) -> None:
    handoff_id = world.hand_off()
    world.hand_back(handoff_id)
    world.agents.faults.fail_next(status=None, lost_answer=True, ops={"post_message"})
    world.run()
    assert len(_handback_posts(world, handoff_id)) == 1
    assert world.event(handoff_id, "handedBack")["recovered"] is True


def test_a_hand_back_that_cannot_be_posted_is_failed_on_its_own() -> None:
    world = build_world(max_delivery_attempts=2)
    handoff_id = world.hand_off()
    world.hand_back(handoff_id)
    world.agents.faults.fail_next(times=5, status=503, ops={"post_message"})
    world.run()
    state = world.state(handoff_id)
    reason = "post_message answered 503 (gave up after 2 attempts)"
    assert state.handbacks[1].status == "failed" and state.handbacks[1].error == reason
    assert state.status == "delivered"  # the handoff itself stands
    assert world.event(handoff_id, "handBackFailed") == {"seq": 1, "reason": reason, "how": "failed"}
    assert world.queue.poison == [
        {"op": "handback", "handoffId": handoff_id, "seq": 1, "attempt": 2, "reason": reason}
    ]


def test_the_findings_are_history_even_when_a_s_thread_refuses_them(world: World) -> None:
    handoff_id = world.hand_off()
    world.agents.faults.fail_next(status=400, ops={"post_message"})  # permanent: the hand-back fails
    world.hand_back(handoff_id)
    world.run()
    assert world.state(handoff_id).handbacks[1].status == "failed"
    (entry,) = world.history.entries()  # indexed while the post was tried, kept though it failed
    assert (entry["HandoffId"], entry["Seq"]) == (handoff_id, 1)


def test_the_history_is_written_while_the_hand_back_is_posted(world: World) -> None:
    handoff_id = world.hand_off()
    world.hand_back(handoff_id)
    post, index, overlapped = run_during(world.agents.post_message, world.history.index_handback)
    world.agents.post_message, world.history.index_handback = post, index  # type: ignore[method-assign]
    world.run()
    assert overlapped == [True, True]
    assert world.state(handoff_id).status == "handedBack"
    assert len(world.history.entries()) == 1


def test_the_history_is_written_before_the_write_that_ends_the_step(world: World) -> None:
    # A crash after that write leaves nothing to retry: the history must be complete by then.
    handoff_id = world.hand_off()
    world.hand_back(handoff_id)
    seen_at_each_write = seen_at_state_writes(
        world, world.history, "index_handback", lambda: len(world.history.entries())
    )
    world.run()
    assert world.state(handoff_id).status == "handedBack"
    assert seen_at_each_write[-1] == 1


def test_a_history_that_cannot_be_written_does_not_stop_the_hand_back(world: World) -> None:
    handoff_id = world.hand_off()
    world.history.faults.outage()
    world.hand_back(handoff_id)
    world.run()
    assert world.state(handoff_id).status == "handedBack"


def test_the_hand_back_message_of_a_hand_back_already_failed_does_nothing(world: World) -> None:
    handoff_id = world.hand_off()
    world.hand_back(handoff_id)
    world.queue.clear()
    world.store.update_state(handoff_id, lambda s: setattr(s.handbacks[1], "status", "failed"))
    world.process({"op": "handback", "handoffId": handoff_id, "seq": 1, "attempt": 1})
    assert _handback_posts(world, handoff_id) == []
