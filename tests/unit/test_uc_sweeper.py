"""The sweeper re-queues work nobody is doing, and gives a handoff up when re-queueing does not help;
operators queue failed steps again."""

from __future__ import annotations

from datetime import timedelta

import pytest

from handoff.domain.errors import Forbidden, NotFound
from handoff.domain.records import HandoffState
from handoff.ports import StorageUnavailable
from handoff.services.policy import GIVE_UP_AFTER, MAX_SWEEPS
from tests.unit.conftest import CHECKOUT, OPERATOR, PAYMENTS, World, handoff_body


def _stranded(world: World) -> str:
    """A handoff accepted whose delivery message was lost."""
    view, _ = world.accept(handoff_body(world.source_thread()))
    world.queue.clear()
    return view.id


def _idle(world: World) -> None:
    world.clock.advance(world.settings.sweep_after_seconds + 1)


# ---------------------------------------------------------------- re-queueing


def test_a_stale_accepted_handoff_is_requeued_and_audited(world: World) -> None:
    handoff_id = _stranded(world)
    _idle(world)
    report = world.sweep()
    assert (report.requeued, report.gave_up, report.errors) == (1, 0, 0)
    assert world.queue.messages() == [{"op": "deliver", "handoffId": handoff_id, "attempt": 1}]
    (event,) = [e for e in world.store.events(handoff_id) if e.type == "redeliveryScheduled"]
    assert event.actor == "system"
    assert event.details == {"op": "deliver", "reason": "no activity", "sweep": 1}
    state = world.state(handoff_id)
    assert (state.swept_at, state.sweeps) == (world.clock(), 1)
    world.run()
    assert world.state(handoff_id).status == "delivered"


def test_a_handoff_is_not_swept_before_it_has_been_idle_long_enough(world: World) -> None:
    _stranded(world)
    world.clock.advance(world.settings.sweep_after_seconds - 5)
    assert world.sweep().requeued == 0 and world.queue.messages() == []


def test_work_is_requeued_at_most_once_per_interval(world: World) -> None:
    _stranded(world)
    _idle(world)
    world.sweep()
    world.queue.clear()
    world.clock.advance(5)
    assert world.sweep().requeued == 0
    _idle(world)
    assert world.sweep().requeued == 1


def test_a_retry_scheduled_for_later_counts_as_activity(world: World) -> None:
    handoff_id = _stranded(world)
    due = world.clock() + timedelta(minutes=10)
    world.store.update_state(handoff_id, lambda s: setattr(s, "retry_at", due))
    _idle(world)
    assert world.sweep().requeued == 0


def test_a_handoff_a_live_worker_holds_is_left_alone(world: World) -> None:
    handoff_id = _stranded(world)
    _idle(world)

    def lease(state: HandoffState) -> None:
        state.lease_until, state.lease_owner = world.clock() + timedelta(seconds=30), "worker"

    world.store.update_state(handoff_id, lease)
    assert world.sweep().requeued == 0


def test_a_pending_cross_link_is_requeued_as_a_delivery(world: World) -> None:
    handoff_id = world.hand_off()
    world.store.update_state(handoff_id, lambda s: setattr(s, "crosslink", "pending"))
    _idle(world)
    world.sweep()
    assert world.queue.messages() == [{"op": "deliver", "handoffId": handoff_id, "attempt": 1}]


def test_a_pending_hand_back_is_requeued_with_its_number(world: World) -> None:
    handoff_id = world.hand_off()
    world.hand_back(handoff_id)
    world.queue.clear()
    _idle(world)
    world.sweep()
    assert world.queue.messages() == [{"op": "handback", "handoffId": handoff_id, "seq": 1, "attempt": 1}]
    assert world.event(handoff_id, "redeliveryScheduled")["seq"] == 1


def test_finished_and_failed_handoffs_are_not_swept(world: World) -> None:
    done = world.hand_off()
    world.hand_back(done)
    world.run()
    view, _ = world.accept(handoff_body())
    world.agents.faults.fail_next(status=400, ops={"create_thread"})
    world.run()
    assert world.state(view.id).status == "failed"
    _idle(world)
    assert world.sweep().requeued == 0


def test_a_handoff_that_raises_is_counted_and_the_others_are_swept(world: World) -> None:
    first, second = _stranded(world), _stranded(world)
    world.store.faults.fail("update_state")
    _idle(world)
    report = world.sweep()
    assert (report.errors, report.requeued) == (1, 1)
    assert world.queue.messages() == [{"op": "deliver", "handoffId": second, "attempt": 1}]
    assert world.state(first).sweeps == 0


def test_a_sweep_that_cannot_list_stale_work_raises(world: World) -> None:
    world.store.faults.outage()
    with pytest.raises(StorageUnavailable):
        world.sweep()


# ---------------------------------------------------------------- giving up


def _sweep_without_progress(world: World, times: int) -> None:
    for _ in range(times):
        _idle(world)
        world.sweep()
        world.queue.clear()  # the re-queued work is lost again


def test_after_the_maximum_sweeps_and_half_an_hour_the_handoff_is_given_up(world: World) -> None:
    handoff_id = _stranded(world)
    _sweep_without_progress(world, MAX_SWEEPS)
    world.clock.set(world.store.state(handoff_id).updated_at + GIVE_UP_AFTER)
    report = world.sweep()
    reason = f"no progress after {MAX_SWEEPS} re-queues by the sweeper"
    assert (report.gave_up, report.requeued) == (1, 0)
    state = world.state(handoff_id)
    assert (state.status, state.last_error) == ("failed", reason)
    assert world.event(handoff_id, "deliveryFailed") == {"reason": reason, "how": "sweeper"}
    assert world.queue.poison == [{"op": "deliver", "handoffId": handoff_id, "attempt": 1, "reason": reason}]
    assert world.queue.messages() == []


def test_many_sweeps_within_half_an_hour_keep_requeueing(world: World) -> None:
    handoff_id = _stranded(world)
    _sweep_without_progress(world, MAX_SWEEPS + 3)
    assert world.state(handoff_id).status == "accepted" and world.state(handoff_id).sweeps == MAX_SWEEPS + 3


def test_progress_restarts_the_count(world: World) -> None:
    handoff_id = _stranded(world)
    _sweep_without_progress(world, 3)
    world.store.update_state(handoff_id, lambda s: setattr(s, "updated_at", world.clock()))
    _sweep_without_progress(world, 1)
    assert world.state(handoff_id).sweeps == 1


def test_a_stranded_hand_back_is_given_up_on_its_own(world: World) -> None:
    handoff_id = world.hand_off()
    world.hand_back(handoff_id)
    world.queue.clear()
    _sweep_without_progress(world, MAX_SWEEPS)
    world.clock.advance(GIVE_UP_AFTER.total_seconds())
    world.sweep()
    state = world.state(handoff_id)
    assert state.status == "delivered" and state.handbacks[1].status == "failed"
    assert world.event(handoff_id, "handBackFailed")["how"] == "sweeper"


# ---------------------------------------------------------------- operators' retry


def _failed_delivery(world: World) -> str:
    view, _ = world.accept(handoff_body(world.source_thread()))
    world.agents.faults.fail_next(status=400, ops={"create_thread"})
    world.run()
    assert world.state(view.id).status == "failed"
    return view.id


def test_an_operator_retries_a_failed_delivery(world: World) -> None:
    handoff_id = _failed_delivery(world)
    view, steps = world.sweeper.retry(handoff_id, OPERATOR)
    assert view.status == "accepted"
    assert steps == [{"op": "deliver", "step": "delivery"}]
    (event,) = [e for e in world.store.events(handoff_id) if e.type == "retryRequested"]
    assert (event.actor, event.details) == ("operatorKey", {"steps": [{"step": "delivery"}]})
    assert world.queue.messages() == [{"op": "deliver", "handoffId": handoff_id, "attempt": 1}]
    world.run()
    assert world.state(handoff_id).status == "delivered"
    assert world.agents.ops("find_thread") == ["find_thread"]  # it looked before opening a thread


def test_an_operator_retries_a_failed_cross_link(world: World) -> None:
    view, _ = world.accept(handoff_body(world.source_thread()))
    world.agents.faults.fail_next(status=404, ops={"post_message"})
    world.run()
    _, steps = world.sweeper.retry(view.id, OPERATOR)
    assert steps == [{"op": "deliver", "step": "crossLink"}]
    world.run()
    assert world.state(view.id).crosslink == "posted"


def test_an_operator_retries_a_failed_hand_back(world: World) -> None:
    handoff_id = world.hand_off()
    world.hand_back(handoff_id)
    world.agents.faults.fail_next(status=403, ops={"post_message"})
    world.run()
    assert world.state(handoff_id).handbacks[1].status == "failed"
    _, steps = world.sweeper.retry(handoff_id, OPERATOR)
    assert steps == [{"op": "handback", "step": "handBack", "seq": 1}]
    assert world.queue.messages() == [{"op": "handback", "handoffId": handoff_id, "seq": 1, "attempt": 1}]
    world.run()
    state = world.state(handoff_id)
    assert state.handbacks[1].status == "posted" and state.handbacks[1].error is None


def test_a_retry_with_nothing_failed_queues_nothing(world: World) -> None:
    handoff_id = world.hand_off()
    events = world.events(handoff_id)
    _, steps = world.sweeper.retry(handoff_id, OPERATOR)
    assert steps == [] and world.queue.messages() == [] and world.events(handoff_id) == events


def test_a_second_retry_queues_nothing_more(world: World) -> None:
    handoff_id = _failed_delivery(world)
    world.sweeper.retry(handoff_id, OPERATOR)
    _, steps = world.sweeper.retry(handoff_id, OPERATOR)
    assert steps == [] and len(world.queue.messages()) == 1


def test_a_retry_restarts_the_sweepers_count(world: World) -> None:
    handoff_id = _failed_delivery(world)
    world.store.update_state(handoff_id, lambda s: setattr(s, "sweeps", 4))
    world.sweeper.retry(handoff_id, OPERATOR)
    state = world.state(handoff_id)
    assert (state.sweeps, state.swept_at, state.retry_at) == (0, None, None)


def test_a_retry_whose_enqueue_fails_is_left_to_the_sweeper(world: World) -> None:
    handoff_id = _failed_delivery(world)
    world.queue.faults.fail("send")
    _, steps = world.sweeper.retry(handoff_id, OPERATOR)
    assert steps and world.queue.messages() == []
    _idle(world)
    world.sweep()
    world.run()
    assert world.state(handoff_id).status == "delivered"


def test_only_operators_retry(world: World) -> None:
    handoff_id = _failed_delivery(world)
    with pytest.raises(Forbidden):
        world.sweeper.retry(handoff_id, CHECKOUT)
    with pytest.raises(NotFound):
        world.sweeper.retry(handoff_id, PAYMENTS)
    assert world.state(handoff_id).status == "failed"
