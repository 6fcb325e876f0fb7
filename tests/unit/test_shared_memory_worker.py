"""Shared-memory writes through in-memory ports: queued at lifecycle points, written exactly once in
effect, retried, held by a backend's rate limit, skipped, given up, swept and replayed."""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import pytest

from handoff.domain.errors import NotFound, Unprocessable
from handoff.domain.shared_memory.writes import WriteError, write_key
from handoff.services.handoffs import GIVE_UP_AFTER, MAX_SWEEPS
from handoff.services.shared_memory.jobs import MAX_CHAIN
from handoff.services.shared_memory.publisher import SharedMemoryPublisher, destinations
from handoff.services.shared_memory.worker import SharedMemoryService
from handoff.settings import Settings
from tests.unit.memory.shared_memory import (
    AGENT_ID,
    LOST_ANSWER,
    FakeClock,
    MemoryHandoffStore,
    MemoryInboundStore,
    MemoryQueue,
    MemoryWriters,
    MemoryWriteState,
    make_record,
    registry,
)

ALL_POINTS = ["delivered", "handedBack", "failed", "alertResolved"]
GH = {
    "name": "gh",
    "type": "github",
    "baseUrl": "https://api.github.com",
    "repo": "contoso/shop",
    "secretSetting": "GH_TOKEN",
    "webhookSecretSetting": "GH_HOOK",
    "on": ALL_POINTS,
}
PD = {
    "name": "pd",
    "type": "pagerduty",
    "baseUrl": "https://api.pagerduty.com",
    "secretSetting": "PD_TOKEN",
    "fromEmail": "oncall@contoso.com",
    "on": ["handedBack", "failed"],
}
JIRA = {
    "name": "jira",
    "type": "jira",
    "baseUrl": "https://contoso.atlassian.net",
    "secretSetting": "JIRA_TOKEN",
    "issue": "OPS-1",
    "on": ALL_POINTS,
}
SN = {
    "name": "sn",
    "type": "servicenow",
    "baseUrl": "https://contoso.service-now.com",
    "secretSetting": "SN_TOKEN",
    "on": ALL_POINTS,
}
H1 = "0b7e4c1e-0000-4000-8000-000000000001"
H2 = "0b7e4c1e-0000-4000-8000-000000000002"
H3 = "0b7e4c1e-0000-4000-8000-000000000003"
SETTINGS = Settings(
    public_base_url="https://broker.example.com",
    shared_memory_retry_base_seconds=2.0,
    shared_memory_retry_max_seconds=60.0,
    shared_memory_max_age_seconds=600.0,
    sweep_after_seconds=60,
)


@dataclass
class World:
    clock: FakeClock
    store: MemoryHandoffStore
    queue: MemoryQueue
    state: MemoryWriteState
    writers: MemoryWriters
    index: MemoryInboundStore
    service: SharedMemoryService

    def message(
        self, handoff_id: str = H1, point: str = "handedBack", seq: int = 1, backend: str = "gh", **extra: Any
    ) -> dict[str, Any]:
        return {
            "handoffId": handoff_id,
            "point": point,
            "seq": seq,
            "backend": backend,
            "attempt": 1,
            "firstAt": self.clock().isoformat(),
            "details": {},
            **extra,
        }

    def row(self, handoff_id: str = H1, key: str = "handedBack:1|gh") -> dict[str, Any]:
        return self.state.rows.get((handoff_id, key), {})

    def run_queue(self, limit: int = 50) -> int:
        """Process the queued messages one by one, the clock moving on by each message's delay."""
        runs = 0
        while self.queue.sent and runs < limit:
            message, delay = self.queue.sent.pop(0)
            self.clock.advance(delay)
            self.service.process(message)
            runs += 1
        return runs


def _world(backends: list[dict[str, Any]] | None = None, settings: Settings = SETTINGS) -> World:
    clock = FakeClock()
    store = MemoryHandoffStore(clock)
    queue, state, writers, index = MemoryQueue(), MemoryWriteState(), MemoryWriters(), MemoryInboundStore()
    service = SharedMemoryService(
        settings=settings,
        registry=registry(backends or [GH, PD, JIRA, SN], checkout=["gh"]),
        store=store,
        queue=queue,
        state=state,
        writers=writers,
        clock=clock,
        destinations=index,
    )
    return World(clock, store, queue, state, writers, index, service)


@pytest.fixture
def world() -> World:
    w = _world()
    w.store.add(make_record(H1, handbacks=1))
    return w


# ---------------------------------------------------------------- publishing


def _publisher(w: World, **agent_memory: list[str]) -> SharedMemoryPublisher:
    reg = registry([GH, PD, JIRA, SN], **agent_memory)
    return SharedMemoryPublisher(reg, w.queue, w.store, clock=w.clock, destinations=w.index)


def test_a_lifecycle_point_queues_one_write_per_backend_and_audits_it(world):
    publisher = _publisher(world, checkout=["gh", "pd"])
    record = world.store.records[H1]
    publisher.on_lifecycle(record, "handedBack", {"seq": 1, "reason": "r", "secret": "x", "threadId": None})
    messages = world.queue.messages
    assert [m["backend"] for m in messages] == ["gh", "pd"]
    assert messages[0] == {
        "handoffId": H1,
        "point": "handedBack",
        "seq": 1,
        "backend": "gh",
        "attempt": 1,
        "firstAt": world.clock().isoformat(),
        "details": {"reason": "r"},  # only the secret-free keys, and none that are None
    }
    event = world.store.events(H1, "sharedMemoryQueued")[0]
    assert event.details == {"point": "handedBack", "seq": 1, "backends": ["gh", "pd"]}


def test_only_backends_whose_on_lists_the_point_are_queued(world):
    publisher = _publisher(world, checkout=["gh", "pd"])
    publisher.on_lifecycle(world.store.records[H1], "delivered", {})
    assert [m["backend"] for m in world.queue.messages] == ["gh"]  # pd writes on handedBack and failed only


def test_no_backend_queues_nothing_and_audits_nothing(world):
    publisher = _publisher(world)
    publisher.on_lifecycle(world.store.records[H1], "handedBack", {"seq": 1})
    assert world.queue.messages == []
    assert world.store.types(H1) == []


def test_each_backend_is_queued_once_whoever_names_it():
    w = _world()
    record = w.store.add(make_record(H2, shared_memory=("GH", "jira")))
    publisher = _publisher(w, checkout=["gh"])
    publisher.on_lifecycle(record, "failed", {"sharedMemory": ["jira", "gh"]})
    assert [m["backend"] for m in w.queue.messages] == ["gh", "jira"]


def test_an_unknown_backend_name_is_skipped_with_a_warning(world, caplog):
    publisher = _publisher(world, checkout=["gh"])
    with caplog.at_level(logging.WARNING, logger="handoff"):
        publisher.on_lifecycle(world.store.records[H1], "handedBack", {"sharedMemory": ["nope"]})
    assert [m["backend"] for m in world.queue.messages] == ["gh"]
    assert "'nope' is not configured" in caplog.text


def test_destinations_lists_configured_names_once_in_canonical_spelling():
    reg = registry([GH, PD], checkout=["GH", "pd"])
    record = make_record(H1, shared_memory=("gh",))
    assert destinations(reg, record, "handedBack", ["Pd"]) == ["gh", "pd"]
    assert destinations(reg, record, "delivered") == ["gh"]


def test_delivery_indexes_the_records_a_handoff_names_on_webhook_backends(world):
    record = world.store.add(make_record(H2, incident={"id": "contoso/shop#7", "platform": "github"}))
    publisher = _publisher(world, checkout=["pd", "gh", "sn"])
    publisher.on_lifecycle(record, "delivered", {})
    # gh has a webhook secret: its issue is indexed though the write itself is queued separately.
    assert world.index.index == {("gh", "contoso/shop#7"): [H2]}


def test_an_index_failure_never_stops_the_queueing(world, caplog):
    record = world.store.add(make_record(H2, incident={"id": "contoso/shop#7", "platform": "github"}))
    world.index.fail_index = True
    with caplog.at_level(logging.ERROR, logger="handoff"):
        _publisher(world, checkout=["gh"]).on_lifecycle(record, "delivered", {})
    assert [m["backend"] for m in world.queue.messages] == ["gh"]
    assert f"could not index {H2} on gh contoso/shop#7" in caplog.text


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
    w = _world()
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


def _fail_with(world: World, *errors: WriteError, backend: str = "gh") -> None:
    found = world.service.registry.shared_memory.find(backend)
    world.writers.writer_for(found).failures = list(errors)


def test_a_transient_failure_is_retried_with_backoff(world):
    _fail_with(world, WriteError("503 from GitHub", transient=True))
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
    _fail_with(world, WriteError("429", transient=True, retry_after=30))
    world.service.process(world.message())
    [(_, delay)] = world.queue.sent
    assert delay == pytest.approx(30)


def test_backoff_grows_with_the_attempt(world):
    _fail_with(world, WriteError("503", transient=True))
    world.service.process(world.message(attempt=4))
    [(message, delay)] = world.queue.sent
    assert message["attempt"] == 5
    assert 8.0 <= delay <= 16.0


def test_a_rate_limit_holds_every_write_to_the_backend(world):
    world.store.add(make_record(H2, handbacks=1))
    _fail_with(world, WriteError("secondary rate limit", transient=True, retry_after=45, backend_wide=True))
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
    _fail_with(world, WriteError("503", transient=True))
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
    _fail_with(world, WriteError("waiting for the slot", transient=True, retry_after=3, deferral=True))
    message = world.message()
    world.service.process(message)
    [(again, delay)] = world.queue.sent
    assert again == message and delay == 3
    assert "sharedMemoryRetryScheduled" not in world.store.types(H1)
    assert world.row()["RetryAt"] == world.clock() + timedelta(seconds=3)


@pytest.mark.parametrize(("retry_after", "expected"), [(None, 1.0), (0.1, 0.5), (7.0, 7.0)])
def test_a_deferral_waits_at_least_half_a_second(world, retry_after, expected):
    _fail_with(world, WriteError("busy", transient=True, retry_after=retry_after, deferral=True))
    world.service.process(world.message())
    assert world.queue.sent[0][1] == expected


def test_transient_failures_past_the_max_age_give_up_failed_and_audited(world):
    errors = [WriteError("503 from GitHub", transient=True) for _ in range(40)]
    _fail_with(world, *errors)
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
    _fail_with(world, WriteError("404 repository not found", transient=False))
    world.service.process(world.message())
    assert world.queue.sent == []
    assert (world.row()["Status"], world.row()["Error"]) == ("failed", "404 repository not found")
    assert world.store.types(H1) == ["sharedMemoryAttempt", "sharedMemoryFailed"]


def test_a_failed_write_is_not_retried_by_a_duplicate_message(world):
    _fail_with(world, WriteError("404", transient=False))
    world.service.process(world.message())
    world.service.process(world.message())
    assert world.store.types(H1).count("sharedMemoryAttempt") == 1


# ---------------------------------------------------------------- skips


def test_the_pagerduty_note_cap_skips_the_write_with_a_warning():
    w = _world()
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


# ---------------------------------------------------------------- the sweeper


def _stranded(world: World) -> None:
    """A write whose worker died after sending it (pending, attempted, its message kept)."""
    world.writers.writer_for(world.service.registry.shared_memory.find("gh")).failures = [LOST_ANSWER]
    world.service.process(world.message())
    world.queue.take()
    world.state.put_write(H1, "handedBack:1|gh", {"RetryAt": None})


def test_the_sweeper_requeues_a_write_a_worker_left(world):
    _stranded(world)
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
    _stranded(world)
    assert world.service.sweep().requeued == 0  # not stale yet
    world.state.put_write(H2, "handedBack:1|gh", {"Status": "pending", "UpdatedAt": world.clock()})
    world.clock.advance(SETTINGS.sweep_after_seconds + 1)
    assert world.service.sweep().requeued == 1  # only the tried one


def test_the_sweeper_waits_for_a_retry_that_is_due(world):
    _fail_with(world, WriteError("429", transient=True, retry_after=500))
    world.service.process(world.message())
    world.clock.advance(SETTINGS.sweep_after_seconds + 1)
    assert world.service.sweep().requeued == 0


def test_the_sweeper_gives_a_requeued_message_its_time(world):
    _stranded(world)
    world.clock.advance(SETTINGS.sweep_after_seconds + 1)
    assert world.service.sweep().requeued == 1
    world.clock.advance(10)
    assert world.service.sweep().requeued == 0


def test_the_sweeper_gives_up_on_a_write_that_never_progresses(world):
    _stranded(world)
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
    _stranded(world)
    world.clock.advance(SETTINGS.sweep_after_seconds + 1)
    world.service.sweep()
    assert world.row()["Sweeps"] == 1
    world.state.put_write(H1, "handedBack:1|gh", {"UpdatedAt": world.clock()})  # a worker touched it
    world.clock.advance(SETTINGS.sweep_after_seconds + 1)
    world.service.sweep()
    assert world.row()["Sweeps"] == 1


def test_a_write_the_sweeper_cannot_read_is_counted_and_the_others_swept(world, caplog):
    _stranded(world)
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
    _fail_with(world, WriteError("404", transient=False), backend="jira")
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
    _fail_with(world, WriteError("404", transient=False))
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
    _fail_with(world, WriteError("404", transient=False))
    _fail_with(world, WriteError("404", transient=False), backend="jira")
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
