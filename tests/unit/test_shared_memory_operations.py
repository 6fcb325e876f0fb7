"""Shared-memory writes for operators and the sweeper (through in-memory ports): writes a dead worker
left are re-queued and given up, every write's state is shown, failed writes are replayed."""

from __future__ import annotations

import logging
from datetime import timedelta

import pytest

from handoff.domain.errors import NotFound, Unprocessable
from handoff.domain.shared_memory.writes import WriteError, write_key
from handoff.services.policy import GIVE_UP_AFTER, MAX_SWEEPS
from tests.unit.memory.shared_memory import make_record
from tests.unit.memory.shared_memory_world import (
    H1,
    H2,
    H3,
    SETTINGS,
    World,
    fail_with,
    make_world,
    strand,
)


@pytest.fixture
def world() -> World:
    w = make_world()
    w.store.add(make_record(H1, handbacks=1))
    return w


# ---------------------------------------------------------------- the sweeper


def test_the_sweeper_requeues_a_write_a_worker_left(world):
    strand(world)
    world.clock.advance(SETTINGS.sweep_after_seconds + 1)
    report = world.service.sweep()
    assert (report.requeued, report.gave_up, report.errors) == (1, 0, 0)
    [(message, delay)] = world.queue.sent
    assert (message["attempt"], message["backend"], delay) == (2, "gh", 0)
    requeued = world.store.events(H1, "sharedMemoryRequeued")[0]
    assert requeued.actor == "system"
    assert requeued.details == {
        "backend": "gh",
        "point": "handedBack",
        "seq": 1,
        "reason": "no activity",
        "sweep": 1,
    }
    world.run_queue()
    assert len(world.writers["gh"].notes) == 1  # the next worker found the note instead of writing again
    assert world.row()["Status"] == "written"


def test_the_sweeper_leaves_fresh_and_untried_writes_alone(world):
    strand(world)
    assert world.service.sweep().requeued == 0  # not stale yet
    world.state.put_write(H2, "handedBack:1|gh", {"Status": "pending", "UpdatedAt": world.clock()})
    world.clock.advance(SETTINGS.sweep_after_seconds + 1)
    assert world.service.sweep().requeued == 1  # only the tried one


def test_the_sweeper_waits_for_a_retry_that_is_due(world):
    fail_with(world, WriteError("429", transient=True, retry_after=500))
    world.service.process(world.message())
    world.clock.advance(SETTINGS.sweep_after_seconds + 1)
    assert world.service.sweep().requeued == 0


def test_the_sweeper_gives_a_requeued_message_its_time(world):
    strand(world)
    world.clock.advance(SETTINGS.sweep_after_seconds + 1)
    assert world.service.sweep().requeued == 1
    world.clock.advance(10)
    assert world.service.sweep().requeued == 0


def test_the_sweeper_gives_up_on_a_write_that_never_progresses(world):
    strand(world)
    step = max(timedelta(seconds=SETTINGS.sweep_after_seconds + 1), GIVE_UP_AFTER / MAX_SWEEPS)
    for _ in range(MAX_SWEEPS):
        world.clock.now += step
        assert world.service.sweep().requeued == 1
    world.clock.now += step
    report = world.service.sweep()
    assert (report.requeued, report.gave_up) == (0, 1)
    assert world.row()["Status"] == "failed"
    assert world.row()["Error"] == f"no progress after {MAX_SWEEPS} re-queues by the sweeper"


def test_progress_restarts_the_sweep_count(world):
    strand(world)
    world.clock.advance(SETTINGS.sweep_after_seconds + 1)
    world.service.sweep()
    assert world.row()["Sweeps"] == 1
    world.state.put_write(H1, "handedBack:1|gh", {"UpdatedAt": world.clock()})  # a worker touched it
    world.clock.advance(SETTINGS.sweep_after_seconds + 1)
    world.service.sweep()
    assert world.row()["Sweeps"] == 1


def test_a_write_the_sweeper_cannot_read_is_counted_and_the_others_swept(world, caplog):
    strand(world)
    world.state.put_write(
        H2,
        "handedBack:1|gh",
        {"Status": "pending", "Attempted": True, "Message": "{not json", "UpdatedAt": world.clock()},
    )
    world.clock.advance(SETTINGS.sweep_after_seconds + 1)
    with caplog.at_level(logging.ERROR, logger="handoff"):
        report = world.service.sweep()
    assert (report.requeued, report.errors) == (1, 1)
    assert "could not sweep shared-memory write handedBack:1|gh" in caplog.text


# ---------------------------------------------------------------- status and replay


def test_writes_shows_each_write_for_operators(world):
    fail_with(world, WriteError("404", transient=False), backend="jira")
    world.service.process(world.message())
    world.service.process(world.message(backend="jira"))
    views = sorted(world.service.writes(H1), key=lambda view: view["backend"])
    assert views == [
        {
            "backend": "gh",
            "point": "handedBack",
            "seq": 1,
            "status": "written",
            "destination": "contoso/shop#1",
            "url": "gh:contoso/shop#1/1",
            "attempts": 1,
            "error": None,
        },
        {
            "backend": "jira",
            "point": "handedBack",
            "seq": 1,
            "status": "failed",
            "destination": "OPS-1",
            "url": None,
            "attempts": 1,
            "error": "404",
        },
    ]


def test_replay_requeues_failed_writes_with_a_fresh_budget(world):
    fail_with(world, WriteError("404", transient=False))
    world.service.process(world.message())
    world.clock.advance(3600)
    result = world.service.replay(H1, actor="operator:alice")
    assert result == {"handoffId": H1, "replayed": [{"backend": "gh", "point": "handedBack", "seq": 1}]}
    [(message, _)] = world.queue.sent
    assert message == {
        "handoffId": H1,
        "point": "handedBack",
        "seq": 1,
        "backend": "gh",
        "attempt": 1,
        "firstAt": world.clock().isoformat(),
        "details": {},
        "replay": True,
    }
    assert (world.row()["Status"], world.row()["Error"]) == ("pending", "")
    replay = world.store.events(H1, "sharedMemoryReplayScheduled")[0]
    assert (replay.actor, replay.details) == ("operator:alice", {"writes": result["replayed"]})
    world.run_queue()
    assert world.row()["Status"] == "written"
    assert len(world.writers["gh"].notes) == 1


def test_replay_of_one_backend_leaves_the_others_failed(world):
    fail_with(world, WriteError("404", transient=False))
    fail_with(world, WriteError("404", transient=False), backend="jira")
    world.service.process(world.message())
    world.service.process(world.message(backend="jira"))
    result = world.service.replay(H1, "JIRA")
    assert [w["backend"] for w in result["replayed"]] == ["jira"]
    assert world.row()["Status"] == "failed"


def test_replay_with_nothing_failed_changes_nothing(world):
    world.service.process(world.message())
    assert world.service.replay(H1) == {"handoffId": H1, "replayed": []}
    assert "sharedMemoryReplayScheduled" not in world.store.types(H1)
    assert world.queue.sent == []


def test_replay_of_an_unknown_handoff_is_404(world):
    with pytest.raises(NotFound):
        world.service.replay(H3)
    with pytest.raises(NotFound):
        world.service.replay("not-an-id")


def test_replay_of_an_unknown_backend_is_422_naming_the_field(world):
    with pytest.raises(Unprocessable) as problem:
        world.service.replay(H1, "slack")
    assert problem.value.errors[0].field == "/backend"


def test_write_key_is_what_the_state_is_stored_under(world):
    world.service.process(world.message(point="alertResolved", seq=0))
    assert (H1, write_key("alertResolved", 0, "gh")) in world.state.rows
