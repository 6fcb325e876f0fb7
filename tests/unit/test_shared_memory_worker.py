"""Shared-memory writes through in-memory ports: written exactly once in effect, retried, held by a
backend's rate limit, skipped, given up, and poisoned messages marked failed."""

from __future__ import annotations

import json
import logging
from datetime import timedelta

import pytest

from handoff.domain.shared_memory.writes import WriteError
from handoff.services.shared_memory.jobs import MAX_CHAIN
from tests.unit.memory.shared_memory import AGENT_ID, LOST_ANSWER, make_record
from tests.unit.memory.shared_memory_world import (
    H1,
    H2,
    H3,
    SETTINGS,
    World,
    fail_with,
    make_world,
)


@pytest.fixture
def world() -> World:
    w = make_world()
    w.store.add(make_record(H1, handbacks=1))
    return w


# ---------------------------------------------------------------- one write, once


def test_a_write_is_performed_once_and_recorded(world):
    world.service.process(world.message())
    writer = world.writers["gh"]
    assert len(writer.notes) == 1
    row = world.row()
    assert (row["Status"], row["Url"], row["Destination"], row["Attempts"]) == (
        "written",
        "gh:contoso/shop#1/1",
        "contoso/shop#1",
        1,
    )
    assert world.store.types(H1) == ["sharedMemoryAttempt", "sharedMemoryWritten"]
    written = world.store.events(H1, "sharedMemoryWritten")[0].details
    assert written["foundExisting"] is False
    assert written["marker"] == f"handoff-memory: {H1}/handedBack:1/gh"
    assert writer.finds == 0  # a first attempt has nothing to look for


def test_a_duplicate_message_of_a_written_write_writes_nothing(world):
    world.service.process(world.message())
    world.service.process(world.message())
    assert len(world.writers["gh"].notes) == 1
    assert world.store.types(H1) == ["sharedMemoryAttempt", "sharedMemoryWritten"]


def test_a_retried_write_finds_its_marker_and_does_not_write_twice(world):
    world.writers.writer_for(world.service.registry.shared_memory.find("gh")).failures = [LOST_ANSWER]
    world.service.process(world.message())
    assert world.row()["Status"] == "pending"
    assert world.run_queue() == 1
    writer = world.writers["gh"]
    assert len(writer.notes) == 1
    assert writer.finds == 1
    row = world.row()
    assert (row["Status"], row["Url"], row["Attempts"]) == ("written", "gh:contoso/shop#1/1", 1)
    assert world.store.events(H1, "sharedMemoryWritten")[0].details["foundExisting"] is True


def test_a_retry_whose_earlier_attempt_did_not_land_writes(world):
    gh = world.service.registry.shared_memory.find("gh")
    world.writers.writer_for(gh).failures = [WriteError("503 from GitHub", transient=True)]
    world.service.process(world.message())
    world.run_queue()
    writer = world.writers["gh"]
    assert (len(writer.notes), writer.finds) == (1, 1)
    assert world.row()["Attempts"] == 2
    attempts = [e.details["attempt"] for e in world.store.events(H1, "sharedMemoryAttempt")]
    assert attempts == [1, 2]


def test_the_state_keeps_the_message_for_the_sweeper_without_its_attempt(world):
    gh = world.service.registry.shared_memory.find("gh")
    world.writers.writer_for(gh).failures = [WriteError("503", transient=True)]
    message = world.message(attempt=3)
    world.service.process(message)
    kept = json.loads(world.row()["Message"])
    assert kept == {k: v for k, v in message.items() if k != "attempt"}


def test_the_written_record_is_indexed_for_human_entries(world):
    world.service.process(world.message())
    assert world.index.index == {("gh", "contoso/shop#1"): [H1]}


def test_backends_without_a_webhook_secret_are_not_indexed():
    w = make_world()
    w.store.add(make_record(H1, incident={"id": "sys1", "platform": "servicenow"}))
    w.service.process(w.message(point="failed", seq=0, backend="sn"))
    assert w.row(key="failed:0|sn")["Status"] == "written"
    assert w.index.index == {}


def test_an_index_failure_does_not_hold_up_the_write(world, caplog):
    world.index.fail_index = True
    with caplog.at_level(logging.ERROR, logger="handoff"):
        world.service.process(world.message())
    assert world.row()["Status"] == "written"
    assert "could not index" in caplog.text


def test_a_backend_name_in_another_case_writes_under_the_configured_name(world):
    world.service.process(world.message(backend="GH"))
    assert world.row(key="handedBack:1|gh")["Status"] == "written"


# ---------------------------------------------------------------- retries and holds


def test_a_transient_failure_is_retried_with_backoff(world):
    fail_with(world, WriteError("503 from GitHub", transient=True))
    world.service.process(world.message())
    [(message, delay)] = world.queue.sent
    assert message["attempt"] == 2
    assert 1.0 <= delay <= 2.0  # base 2 s with jitter for attempt 1
    row = world.row()
    assert (row["Status"], row["Error"]) == ("pending", "503 from GitHub")
    assert row["RetryAt"] == world.clock() + timedelta(seconds=delay)
    details = world.store.events(H1, "sharedMemoryRetryScheduled")[0].details
    assert details == {
        "backend": "gh",
        "point": "handedBack",
        "seq": 1,
        "attempt": 1,
        "reason": "503 from GitHub",
        "delaySeconds": round(delay, 1),
        "rateLimited": False,
    }


def test_retry_after_is_honoured(world):
    fail_with(world, WriteError("429", transient=True, retry_after=30))
    world.service.process(world.message())
    [(_, delay)] = world.queue.sent
    assert delay == pytest.approx(30)


def test_backoff_grows_with_the_attempt(world):
    fail_with(world, WriteError("503", transient=True))
    world.service.process(world.message(attempt=4))
    [(message, delay)] = world.queue.sent
    assert message["attempt"] == 5
    assert 8.0 <= delay <= 16.0


def test_a_rate_limit_holds_every_write_to_the_backend(world):
    world.store.add(make_record(H2, handbacks=1))
    fail_with(world, WriteError("secondary rate limit", transient=True, retry_after=45, backend_wide=True))
    world.service.process(world.message())
    assert world.state.holds == {"backend|gh": world.clock() + timedelta(seconds=45)}
    assert world.store.events(H1, "sharedMemoryRetryScheduled")[0].details["rateLimited"] is True
    world.queue.take()
    world.clock.advance(10)
    world.service.process(world.message(H2))
    [(message, delay)] = world.queue.sent
    assert message["handoffId"] == H2 and message["attempt"] == 1  # not an attempt: just later
    assert delay == pytest.approx(35.5)
    assert world.store.types(H2) == []
    assert world.row(H2) == {}  # a write not yet tried has nothing to note


def test_a_rate_limit_on_one_backend_never_holds_another(world):
    world.store.add(make_record(H2, handbacks=1, incident={"id": "PINC1", "platform": "pagerduty"}))
    world.state.block("backend|gh", world.clock() + timedelta(minutes=5))
    world.service.process(world.message(H2, backend="pd"))
    assert world.row(H2, "handedBack:1|pd")["Status"] == "written"


def test_a_held_write_under_way_notes_when_it_comes_back(world):
    fail_with(world, WriteError("503", transient=True))
    world.service.process(world.message())
    world.queue.take()
    world.state.block("backend|gh", world.clock() + timedelta(seconds=100))
    world.service.process(world.message(attempt=2))
    assert world.row()["RetryAt"] == world.clock() + timedelta(seconds=100.5)


def test_a_hold_that_has_ended_lets_writes_through(world):
    world.state.block("backend|gh", world.clock() - timedelta(seconds=1))
    world.service.process(world.message())
    assert world.row()["Status"] == "written"


def test_a_wait_for_a_content_slot_is_not_an_attempt(world):
    fail_with(world, WriteError("waiting for the slot", transient=True, retry_after=3, deferral=True))
    message = world.message()
    world.service.process(message)
    [(again, delay)] = world.queue.sent
    assert again == message and delay == 3
    assert "sharedMemoryRetryScheduled" not in world.store.types(H1)
    assert world.row()["RetryAt"] == world.clock() + timedelta(seconds=3)


@pytest.mark.parametrize(("retry_after", "expected"), [(None, 1.0), (0.1, 0.5), (7.0, 7.0)])
def test_a_deferral_waits_at_least_half_a_second(world, retry_after, expected):
    fail_with(world, WriteError("busy", transient=True, retry_after=retry_after, deferral=True))
    world.service.process(world.message())
    assert world.queue.sent[0][1] == expected


def test_transient_failures_past_the_max_age_give_up_failed_and_audited(world):
    errors = [WriteError("503 from GitHub", transient=True) for _ in range(40)]
    fail_with(world, *errors)
    world.service.process(world.message())
    world.run_queue()
    row = world.row()
    assert row["Status"] == "failed"
    assert row["Error"].startswith("503 from GitHub (gave up after ")
    failed = world.store.events(H1, "sharedMemoryFailed")[0].details
    assert failed["replay"] == f"POST /api/handoffs/{H1}/shared-memory/replay"
    assert (failed["backend"], failed["point"], failed["seq"]) == ("gh", "handedBack", 1)
    [poisoned] = world.queue.poisoned
    assert poisoned["reason"] == row["Error"]
    assert world.clock() - world.store.events(H1, "sharedMemoryAttempt")[0].at <= timedelta(seconds=600)
    assert world.writers["gh"].notes == []


def test_a_permanent_failure_fails_at_once(world):
    fail_with(world, WriteError("404 repository not found", transient=False))
    world.service.process(world.message())
    assert world.queue.sent == []
    assert (world.row()["Status"], world.row()["Error"]) == ("failed", "404 repository not found")
    assert world.store.types(H1) == ["sharedMemoryAttempt", "sharedMemoryFailed"]


def test_a_failed_write_is_not_retried_by_a_duplicate_message(world):
    fail_with(world, WriteError("404", transient=False))
    world.service.process(world.message())
    world.service.process(world.message())
    assert world.store.types(H1).count("sharedMemoryAttempt") == 1


# ---------------------------------------------------------------- skips


def test_the_pagerduty_note_cap_skips_the_write_with_a_warning():
    w = make_world()
    w.store.add(make_record(H1, handbacks=1, incident={"id": "PINC1", "platform": "pagerduty"}))
    pd = w.service.registry.shared_memory.find("pd")
    w.writers.writer_for(pd).note_limit = 0
    w.service.process(w.message(backend="pd"))
    row = w.row(key="handedBack:1|pd")
    assert (row["Status"], row["Error"]) == ("skipped", "incident PINC1 has too many notes")
    warning = w.store.events(H1, "sharedMemoryWarning")[0].details
    assert warning == {
        "backend": "pd",
        "point": "handedBack",
        "seq": 1,
        "reason": "incident PINC1 has too many notes",
    }
    assert w.queue.sent == [] and w.queue.poisoned == []


def test_a_handoff_with_nothing_to_write_to_is_skipped(world):
    world.service.process(world.message(backend="pd"))  # no PagerDuty incident on this handoff
    assert world.row(key="handedBack:1|pd")["Status"] == "skipped"
    skipped = world.store.events(H1, "sharedMemorySkipped")[0].details
    assert skipped["reason"] == "nothing to write to on pagerduty for this handoff"
    assert world.writers["pd"].notes == []


def test_an_alerts_pagerduty_incident_in_the_details_is_written_to(world):
    world.service.process(world.message(backend="pd", details={"pagerdutyIncidentId": "PALERT"}))
    assert world.row(key="handedBack:1|pd")["Destination"] == "incident PALERT"


# ---------------------------------------------------------------- messages that name nothing


def test_a_message_for_an_unknown_handoff_is_dropped(world, caplog):
    with caplog.at_level(logging.WARNING, logger="handoff"):
        world.service.process(world.message(H3))
    assert world.state.rows == {} and world.queue.sent == []
    assert "dropping shared-memory message" in caplog.text


def test_a_message_whose_id_is_no_uuid_reads_nothing(world):
    world.service.process(world.message("../../etc"))
    assert world.store.reads == 0
    assert world.state.rows == {}


def test_a_message_for_an_unconfigured_backend_is_dropped(world):
    world.service.process(world.message(backend="slack"))
    assert world.state.rows == {} and world.store.types(H1) == []


# ---------------------------------------------------------------- poisoned messages


class _Boom(Exception):
    pass


def _exploding(world: World) -> None:
    def explode(handoff_id: str) -> None:
        raise _Boom("cannot read")

    world.store.get = explode  # type: ignore[method-assign]


def test_an_unexpected_error_is_raised_for_the_host_to_retry(world):
    _exploding(world)
    with pytest.raises(_Boom):
        world.service.process(world.message(), dequeue_count=1)
    assert world.state.rows == {}


def test_the_last_dequeue_marks_the_write_failed_before_the_host_poisons_it(world):
    _exploding(world)
    message = world.message(backend="Jira")
    with pytest.raises(_Boom):
        world.service.process(message, dequeue_count=SETTINGS.max_dequeue_count)
    row = world.row(key="handedBack:1|jira")
    assert (row["Status"], row["Error"]) == ("failed", "unexpected error: _Boom")
    assert world.store.types(H1) == ["sharedMemoryFailed"]
    assert world.queue.poisoned == [{**message, "reason": "unexpected error: _Boom"}]


def test_a_poisoned_message_that_names_no_write_is_only_logged(world, caplog):
    _exploding(world)
    with caplog.at_level(logging.ERROR, logger="handoff"), pytest.raises(_Boom):
        world.service.process({"handoffId": H1, "point": "handedBack"}, dequeue_count=99)
    assert world.state.rows == {}
    assert "poisoned shared-memory message names no write (_Boom)" in caplog.text


def test_a_failure_to_mark_a_poisoned_write_is_logged_and_the_error_still_raised(world, caplog):
    _exploding(world)
    world.queue.send_poison = None  # type: ignore[assignment]
    with caplog.at_level(logging.ERROR, logger="handoff"), pytest.raises(_Boom):
        world.service.process(world.message(), dequeue_count=99)
    assert "could not mark shared-memory write" in caplog.text


def test_a_message_with_a_seq_that_is_no_number_is_raised(world):
    with pytest.raises(ValueError, match="invalid literal"):
        world.service.process(world.message(seq="one"))


# ---------------------------------------------------------------- what the note says


def test_the_job_carries_the_chain_root_first_and_the_roots_title(world):
    world.store.add(make_record(H2, title="Root investigation", handbacks=1))
    world.store.add(make_record(H3, parent=H2, source="checkout", target="ops", handbacks=1))
    world.service.process(world.message(H3, seq=1))
    job = world.writers["gh"].jobs[0]
    assert job.root_title == "Root investigation"
    assert [step.handoff_id for step in job.note.chain] == [H2, H3]
    assert job.note.chain[0].outcome == "rootCauseFound"


def test_a_missing_parent_ends_the_chain(world):
    world.store.add(make_record(H2, parent=H3, handbacks=1))
    world.service.process(world.message(H2))
    assert [step.handoff_id for step in world.writers["gh"].jobs[0].note.chain] == [H2]


def test_a_long_chain_is_cut(world):
    ids = [f"0b7e4c1e-0000-4000-8000-{n:012d}" for n in range(100, 100 + MAX_CHAIN + 5)]
    for parent, child in zip([None, *ids], ids, strict=False):
        world.store.add(make_record(child, parent=parent, handbacks=1))
    world.service.process(world.message(ids[-1]))
    assert len(world.writers["gh"].jobs[0].note.chain) == MAX_CHAIN


def test_the_note_links_the_agents_threads_and_the_handoff(world):
    world.service.process(world.message())
    note = world.writers["gh"].jobs[0].note
    links = dict(note.links)
    assert links["Handoff"] == f"https://broker.example.com/api/handoffs/{H1}"
    assert links["ops's thread"].endswith("/views/thread/ops-thread")
    assert AGENT_ID.format("checkout") in links["checkout's thread"]
    assert note.headline.startswith("checkout handed back: ")


def test_the_failure_reason_in_the_details_reaches_the_note(world):
    world.service.process(world.message(point="failed", seq=0, details={"reason": "agent unreachable"}))
    assert "Reason: agent unreachable" in world.writers["gh"].jobs[0].note.extra


def test_the_first_attempts_time_travels_with_the_message(world):
    first = world.clock() - timedelta(minutes=3)
    world.service.process(world.message(firstAt=first.isoformat()))
    assert world.writers["gh"].jobs[0].first_at == first
    world.service.process(world.message(H1, point="delivered", seq=0, firstAt=None))
    assert world.writers["gh"].jobs[1].first_at == world.clock()
