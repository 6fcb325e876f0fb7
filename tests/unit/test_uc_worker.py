"""The delivery worker's dispatch: every dequeued message is parsed into its kind of work and run by the
one handler for that kind; what is not work of a known kind is parked on the poison queue with the
reason (and noted in the audit of the handoff it names), never dropped."""

from __future__ import annotations

from typing import Any

import pytest

from handoff.domain.work import AlertNote, HandBack, MalformedWork, parse_work
from handoff.ports import StorageUnavailable
from handoff.services.policy import backoff_seconds
from tests.unit.conftest import World, handoff_body

HID = "00000000-0000-4000-8000-000000000001"
LAST_DEQUEUE = 5  # host.json maxDequeueCount


def _accepted(world: World) -> str:
    view, _ = world.accept(handoff_body(world.source_thread()))
    return view.id


# ---------------------------------------------------------------- messages that are not work


@pytest.mark.parametrize(
    ("message", "reason"),
    [
        (
            {"op": "frobnicate", "handoffId": HID},
            "unknown op 'frobnicate'",
        ),
        ({"handoffId": HID}, "unknown op 'None'"),
        ({"op": "deliver", "handoffId": "not-an-id", "attempt": 1}, "malformed deliver message: handoffId"),
        (
            {"op": "handback", "handoffId": HID},
            "malformed handback message: seq",
        ),
        (
            {"op": "handback", "handoffId": HID, "seq": 0},
            "malformed handback message: seq",
        ),
        ({"op": "deliver", "handoffId": HID, "attempt": "x"}, "malformed deliver message: attempt"),
    ],
)
def test_a_message_that_is_not_work_is_poisoned_with_the_reason(
    world: World, message: dict[str, Any], reason: str
) -> None:
    world.process(message)
    (poisoned,) = world.queue.poison
    assert poisoned["reason"].startswith(reason)
    assert {k: v for k, v in poisoned.items() if k != "reason"} == message
    assert world.agents.calls == [] and world.queue.sent == []


def test_a_rejected_message_naming_a_handoff_is_noted_in_its_audit(world: World) -> None:
    handoff_id = _accepted(world)
    world.queue.clear()
    world.process({"op": "frobnicate", "handoffId": handoff_id})
    rejected = world.event(handoff_id, "workRejected")
    assert rejected == {"op": "frobnicate", "reason": "unknown op 'frobnicate'"}
    assert world.state(handoff_id).status == "accepted"  # the step itself is left to the sweeper


def test_a_rejected_message_is_poisoned_even_when_its_audit_cannot_be_written(world: World) -> None:
    handoff_id = _accepted(world)
    world.store.faults.fail("append_audit")
    world.process({"op": "handback", "handoffId": handoff_id, "seq": "one"})
    assert world.queue.poison[0]["reason"].startswith("malformed handback message")


def test_work_of_a_kind_this_worker_has_no_handler_for_is_poisoned(world: World) -> None:
    handoff_id = _accepted(world)
    world.process({"op": "alertNote", "handoffId": handoff_id, "attempt": 1})
    assert world.queue.poison[-1]["reason"] == "no handler for op 'alertNote' in this worker"


def test_a_registered_kind_of_work_reaches_its_handler(world: World) -> None:
    handoff_id = _accepted(world)
    seen: list[tuple[str, int]] = []
    world.worker.register(AlertNote, lambda note, count: seen.append((note.handoff_id, count)))
    world.process({"op": "alertNote", "handoffId": handoff_id, "attempt": 1}, 2)
    assert seen == [(handoff_id, 2)] and world.queue.poison == []


def test_a_replayed_poison_copy_runs_like_the_original(world: World) -> None:
    handoff_id = _accepted(world)
    world.queue.clear()
    world.process(
        {"op": "deliver", "handoffId": handoff_id, "attempt": 3, "reason": "replayed by an operator"}
    )
    assert world.state(handoff_id).status == "delivered"


def test_a_follow_up_that_keeps_crashing_leaves_the_handoff_as_it_is(world: World) -> None:
    handoff_id = world.hand_off()
    world.store.faults.fail("get", times=1)
    with pytest.raises(StorageUnavailable, match="get"):
        world.process(
            {"op": "watch", "handoffId": handoff_id, "attempt": 1}, world.settings.max_dequeue_count
        )
    assert world.state(handoff_id).status == "delivered" and "deliveryFailed" not in world.events(handoff_id)


def test_a_hand_back_that_keeps_crashing_is_failed_on_its_own(world: World) -> None:
    handoff_id = world.hand_off()
    world.hand_back(handoff_id)
    world.queue.clear()
    world.store.faults.fail("get", times=1)
    message = {"op": "handback", "handoffId": handoff_id, "seq": 1, "attempt": 1}
    with pytest.raises(StorageUnavailable, match="get"):
        world.process(message, LAST_DEQUEUE)
    state = world.state(handoff_id)
    assert (
        state.handbacks[1].status == "failed"
        and state.handbacks[1].error == "unexpected error: StorageUnavailable"
    )
    assert world.event(handoff_id, "handBackFailed")["how"] == "poisoned"


def test_a_step_that_cannot_even_be_failed_is_still_left_to_the_host(world: World) -> None:
    handoff_id = _accepted(world)
    world.store.faults.outage()
    with pytest.raises(StorageUnavailable, match="down"):
        world.process(
            {"op": "deliver", "handoffId": handoff_id, "attempt": 1}, world.settings.max_dequeue_count
        )
    world.store.faults.outage(False)
    assert world.state(handoff_id).status == "accepted"


# ---------------------------------------------------------------- the work messages themselves


def test_work_messages_keep_their_wire_form() -> None:
    raw = {"op": "handback", "handoffId": HID, "seq": 2, "attempt": 1}
    work = parse_work(raw)
    assert isinstance(work, HandBack) and work.wire() == raw
    assert work.next_attempt().wire()["attempt"] == 2
    assert work.poisoned("why") == {**raw, "reason": "why"}


def test_a_message_that_is_not_an_object_is_malformed() -> None:
    with pytest.raises(MalformedWork, match="not a JSON object"):
        parse_work(["deliver"])


@pytest.mark.parametrize(
    ("attempt", "low", "high"), [(1, 1.0, 2.0), (2, 2.0, 4.0), (4, 8.0, 16.0), (20, 150.0, 300.0)]
)
def test_backoff_doubles_with_jitter_up_to_the_cap(attempt: int, low: float, high: float) -> None:
    for _ in range(20):
        assert low <= backoff_seconds(attempt, None, 2.0, 300.0) <= high


def test_backoff_never_comes_before_retry_after() -> None:
    assert backoff_seconds(1, 90, 2.0, 300.0) == 90
    assert backoff_seconds(1, 900, 2.0, 300.0) == 900
