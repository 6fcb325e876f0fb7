"""The polling fallback of webhooks through in-memory ports: which records are read and when, where a
poll starts and how far it moves, closed investigations forgotten, rate limits held, and an entry a
webhook and a poll both see taken once."""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
from dataclasses import dataclass
from datetime import datetime, timedelta

import pytest

from handoff.domain.shared_memory.human_entries import HumanEntry
from handoff.domain.shared_memory.polling import FIRST_POLL_MARGIN, PollCursor
from handoff.domain.shared_memory.writes import WriteError
from handoff.services.human_entries.inbound import HumanInbound
from handoff.services.human_entries.polling import DEFAULT_HOLD_SECONDS, MAX_READS_PER_TICK, EntryPoller
from handoff.services.shared_memory.publisher import SharedMemoryPublisher, index_record
from handoff.services.shared_memory.retry import hold_key
from handoff.settings import Settings
from tests.unit.memory.shared_memory import (
    START,
    FakeClock,
    MemoryAgents,
    MemoryHandoffs,
    MemoryHandoffStore,
    MemoryInboundStore,
    MemoryNotes,
    MemoryQueue,
    MemoryReaders,
    MemoryWriteState,
    make_record,
    registry,
)

SECRET = "gh-hook-secret"
GH = {
    "name": "gh",
    "type": "github",
    "baseUrl": "https://api.github.com",
    "repo": "contoso/shop",
    "secretSetting": "GH_TOKEN",
    "webhookSecretSetting": "GH_HOOK",
    "ownAccount": "handoff-bot",
    "inbound": "both",
}
PD = {
    "name": "pd",
    "type": "pagerduty",
    "baseUrl": "https://api.pagerduty.com",
    "secretSetting": "PD_TOKEN",
    "fromEmail": "oncall@contoso.com",
    "inbound": "poll",
}
HOOKED = {**GH, "name": "hooked", "inbound": "webhook"}
OFF = {**PD, "name": "off", "inbound": "off"}
H1 = "0b7e4c1e-0000-4000-8000-000000000001"
H2 = "0b7e4c1e-0000-4000-8000-000000000002"
ISSUE = "contoso/shop#7"
SETTINGS = Settings(public_base_url="https://broker.example.com", human_poll_seconds=60)


@dataclass
class World:
    handoffs: MemoryHandoffs
    inbound: MemoryInboundStore
    readers: MemoryReaders
    holds: MemoryWriteState
    humans: HumanInbound
    poller: EntryPoller

    @property
    def clock(self) -> FakeClock:
        return self.handoffs.clock

    @property
    def store(self) -> MemoryHandoffStore:
        return self.handoffs.store

    @property
    def queue(self) -> MemoryQueue:
        return self.handoffs.queue

    def investigation(self, handoff_id: str, destination: str = ISSUE, backend: str = "gh", **kw) -> None:
        self.store.add(make_record(handoff_id, **kw))
        self.inbound.index_destination(backend, destination, handoff_id, poll=True)

    def comment(
        self, text: str, entry_id: str = "99", seconds: float = 30, destination: str = ISSUE, **kw
    ) -> HumanEntry:
        values = {
            "backend": "gh",
            "platform": "github",
            "entry_id": entry_id,
            "destination": destination,
            "author": "alice",
            "author_id": "5",
            "at": START + timedelta(seconds=seconds),
            "text": text,
            "url": None,
            "delivery_id": "",
        }
        values = {**values, **kw}
        values.setdefault("author_login", values["author"])  # a GitHub comment's author is its login
        return self.readers.add(HumanEntry(**values))

    def close(self, handoff_id: str) -> None:
        self.store.records[handoff_id].state.status = "handedBack"

    def handoff_ids(self) -> list[str]:
        return [message["handoffId"] for message in self.queue.messages]


@pytest.fixture
def world() -> World:
    clock = FakeClock()
    handoffs = MemoryHandoffs(
        settings=SETTINGS,
        registry=registry([GH, PD, HOOKED, OFF]),
        store=MemoryHandoffStore(clock),
        queue=MemoryQueue(),
        agents=MemoryAgents(),
        clock=clock,
    )
    inbound, readers, holds = MemoryInboundStore(clock), MemoryReaders(), MemoryWriteState()
    humans = HumanInbound(handoffs.context, inbound, MemoryNotes(), environ={"GH_HOOK": SECRET})
    poller = EntryPoller(
        handoffs.context, index=inbound, readers=readers, holds=holds, claimer=humans.claimer
    )
    return World(handoffs, inbound, readers, holds, humans, poller)


# ---------------------------------------------------------------- reading and taking


def test_an_entry_on_an_active_investigations_record_is_queued_for_its_agents(world):
    world.investigation(H1)
    world.comment(f"Customer impact is EU only ({H1})")
    report = world.poller.poll()
    assert (report.polled, report.queued) == (1, 1)
    [message] = world.queue.messages
    assert message["handoffId"] == H1 and message["entry"]["entryId"] == "99"
    assert message["threads"] == [
        {"agent": "ops", "threadId": "ops-thread"},
        {"agent": "checkout", "threadId": "checkout-thread"},
    ]
    assert world.store.types(H1) == ["humanNote"]


def test_the_first_poll_reads_from_a_little_before_the_record_was_indexed(world):
    world.clock.advance(100)
    world.investigation(H1)
    world.poller.poll()
    [(backend, destination, since)] = world.readers.reads
    assert (backend, destination) == ("gh", ISSUE)
    assert since == START + timedelta(seconds=100) - FIRST_POLL_MARGIN


def test_a_record_is_read_at_most_once_per_interval(world):
    world.investigation(H1)
    world.poller.poll()
    world.clock.advance(59)
    world.poller.poll()
    assert len(world.readers.reads) == 1
    world.clock.advance(1)
    world.poller.poll()
    assert len(world.readers.reads) == 2


def test_each_poll_reads_from_the_newest_entry_taken_and_skips_it(world):
    world.investigation(H1)
    first = world.comment("first", "1", seconds=10)
    world.poller.poll()
    world.comment("second", "2", seconds=10)  # the same second as the first
    world.comment("third", "3", seconds=20)
    world.clock.advance(60)
    report = world.poller.poll()
    assert world.readers.reads[-1][2] == first.at
    assert report.queued == 2
    assert [m["entry"]["entryId"] for m in world.queue.messages] == ["1", "2", "3"]
    cursor = world.inbound.states[("gh", ISSUE)]["Cursor"]
    assert cursor == PollCursor(START + timedelta(seconds=20), ("3",))


def test_the_brokers_own_comments_are_not_read_back(world):
    world.investigation(H1)
    world.comment("Handed back\n<!-- handoff-memory: x/handedBack:1/gh -->", "1", author="handoff-bot")
    world.comment("anything", "2", author="handoff-bot")
    assert world.poller.poll().queued == 0
    assert world.queue.messages == [] and world.inbound.entries == {}


def test_a_polled_comment_that_quotes_the_brokers_marker_is_a_persons(world):
    world.investigation(H1)
    world.comment(f"Copied from the broker: <!-- handoff-memory: {H1}/delivered:0/gh -->\nstill 5xx", "3")
    assert world.poller.poll().queued == 1
    assert [m["entry"]["entryId"] for m in world.queue.messages] == ["3"]


@pytest.mark.parametrize("text", ["override: roll back now", "STOP: leave the pool alone"])
def test_an_override_found_by_polling_is_marked(world, text):
    world.investigation(H1)
    world.comment(text)
    world.poller.poll()
    assert world.queue.messages[0]["entry"]["override"] is True
    assert world.store.types(H1) == ["humanOverride"]


def test_an_entry_a_webhook_took_is_not_taken_again_by_the_poll_nor_the_other_way(world):
    world.investigation(H1)
    world.comment("seen by both", "99")
    raw = json.dumps(
        {
            "action": "created",
            "issue": {"number": 7},
            "comment": {"id": 99, "body": "seen by both", "user": {"login": "alice", "id": 5}},
            "repository": {"full_name": "contoso/shop"},
        }
    ).encode()
    headers = {
        "X-GitHub-Event": "issue_comment",
        "X-Hub-Signature-256": "sha256=" + hmac.new(SECRET.encode(), raw, hashlib.sha256).hexdigest(),
    }
    assert world.humans.receive("gh", headers, raw)[1] == 202
    assert world.poller.poll().queued == 0
    world.comment("polled first", "100", seconds=40)
    world.clock.advance(60)
    world.poller.poll()
    raw = raw.replace(b'"id": 99', b'"id": 100')
    headers["X-Hub-Signature-256"] = "sha256=" + hmac.new(SECRET.encode(), raw, hashlib.sha256).hexdigest()
    assert world.humans.receive("gh", headers, raw) == ({"status": "duplicate"}, 200)
    assert [m["entry"]["entryId"] for m in world.queue.messages] == ["99", "100"]


def test_only_backends_that_poll_are_read(world):
    world.investigation(H1, backend="hooked")
    world.investigation(H2, destination="PINC1", backend="off")
    world.investigation(H2, destination="PINC1", backend="pd")
    world.poller.poll()
    assert [(backend, destination) for backend, destination, _ in world.readers.reads] == [("pd", "PINC1")]


# ---------------------------------------------------------------- closed investigations


def test_a_closed_investigation_is_forgotten_and_its_record_no_longer_read(world, caplog):
    world.investigation(H1)
    world.poller.poll()
    world.close(H1)
    world.comment("too late")
    world.clock.advance(60)
    with caplog.at_level(logging.INFO, logger="handoff"):
        report = world.poller.poll()
    assert (report.polled, report.forgotten) == (0, 1)
    assert f"no longer polling gh {ISSUE} for closed {H1}" in caplog.text
    assert len(world.readers.reads) == 1 and world.queue.messages == []
    assert world.inbound.polled_records("gh", 10) == [] and ("gh", ISSUE) not in world.inbound.states


def test_a_record_shared_with_a_running_investigation_is_still_read_for_it(world):
    world.investigation(H1)
    world.investigation(H2, parent=H1)
    world.close(H1)
    world.comment("for whoever still works on it")
    report = world.poller.poll()
    assert (report.forgotten, report.queued) == (1, 1)
    assert world.handoff_ids() == [H2]
    [record] = world.inbound.polled_records("gh", 10)
    assert [h.handoff_id for h in record.handoffs] == [H2]


def test_an_investigation_that_is_gone_is_forgotten(world):
    world.inbound.index_destination("gh", ISSUE, H1, poll=True)
    assert world.poller.poll().forgotten == 1


# ---------------------------------------------------------------- several instances, failures


def test_a_record_another_instance_claimed_is_not_read(world):
    world.investigation(H1)
    world.inbound.steal_next_claim = True
    assert world.poller.poll().polled == 0 and world.readers.reads == []


def test_a_rate_limit_holds_the_backend_until_its_reset(world, caplog):
    world.investigation(H1)
    world.readers.failures = [WriteError("429", transient=True, retry_after=120, backend_wide=True)]
    with caplog.at_level(logging.WARNING, logger="handoff"):
        report = world.poller.poll()
    assert report.held == 1
    assert world.holds.blocked_until(hold_key("gh")) == START + timedelta(seconds=120)
    assert "gh rate-limits the broker: polls wait 120s" in caplog.text
    world.clock.advance(100)
    assert world.poller.poll().held == 1 and len(world.readers.reads) == 1
    world.clock.advance(20)
    world.poller.poll()
    assert len(world.readers.reads) == 2


def test_a_rate_limit_without_a_time_holds_a_minute(world):
    world.investigation(H1)
    world.readers.failures = [WriteError("403", transient=True, backend_wide=True)]
    world.poller.poll()
    assert world.holds.blocked_until(hold_key("gh")) == START + timedelta(seconds=DEFAULT_HOLD_SECONDS)


def test_a_write_hold_also_holds_polls(world):
    world.investigation(H1)
    world.holds.block(hold_key("gh"), START + timedelta(seconds=5))
    assert world.poller.poll().held == 1 and world.readers.reads == []


def test_a_record_that_cannot_be_read_is_logged_and_the_others_are_read(world, caplog):
    world.investigation(H1)
    world.investigation(H2, destination="contoso/shop#8")
    world.readers.failures = [WriteError("404 Not Found", transient=False)]
    with caplog.at_level(logging.WARNING, logger="handoff"):
        report = world.poller.poll()
    assert (report.errors, report.polled) == (1, 2)
    assert "could not poll gh contoso/shop#7 for human entries: 404 Not Found" in caplog.text


def test_a_backend_that_fails_is_logged_and_the_others_are_polled(world, caplog):
    world.investigation(H1)
    world.investigation(H2, destination="PINC1", backend="pd")
    world.readers.failures = [ConnectionError("storage unreachable")]
    with caplog.at_level(logging.ERROR, logger="handoff"):
        report = world.poller.poll()
    assert report.errors == 1 and "could not poll gh for human entries" in caplog.text
    assert [backend for backend, _, _ in world.readers.reads] == ["gh", "pd"]


def test_an_entry_whose_id_cannot_be_a_key_is_passed(world, caplog):
    world.investigation(H1)
    world.comment("unreadable id", "x" * 200, seconds=10)
    world.comment("fine", "2", seconds=20)
    with caplog.at_level(logging.WARNING, logger="handoff"):
        assert world.poller.poll().queued == 1
    assert f"human entry on gh {ISSUE} skipped" in caplog.text
    assert world.inbound.states[("gh", ISSUE)]["Cursor"].since == START + timedelta(seconds=20)


def test_an_entry_that_cannot_be_queued_is_read_again_next_time(world):
    world.investigation(H1)
    world.comment("first", "1", seconds=10)
    world.comment("second", "2", seconds=20)
    sends = world.queue.send

    def fail_second(message, delay_seconds=0):
        if message["entry"]["entryId"] == "2":
            raise ConnectionError("queue unreachable")
        sends(message, delay_seconds)

    world.queue.send = fail_second
    assert world.poller.poll().errors == 1
    assert world.inbound.states[("gh", ISSUE)]["Cursor"] == PollCursor(START + timedelta(seconds=10), ("1",))
    assert world.inbound.released == [("gh", "2")]
    world.queue.send = sends
    world.clock.advance(60)
    world.poller.poll()
    assert [m["entry"]["entryId"] for m in world.queue.messages] == ["1", "2"]


def test_at_most_so_many_records_are_read_per_tick(world):
    for n in range(MAX_READS_PER_TICK + 3):
        world.investigation(f"0b7e4c1e-0000-4000-8000-{n + 100:012d}", destination=f"contoso/shop#{n + 10}")
    assert world.poller.poll().polled == MAX_READS_PER_TICK
    world.clock.advance(1)
    assert world.poller.poll().polled == 3


# ---------------------------------------------------------------- indexing for polling


def _index_world(backends: list[dict]) -> tuple[MemoryInboundStore, SharedMemoryPublisher]:
    index = MemoryInboundStore()
    publisher = SharedMemoryPublisher(
        registry(backends, checkout=[b["name"] for b in backends]),
        MemoryQueue(),
        MemoryHandoffStore(FakeClock()),
        destinations=index,
    )
    return index, publisher


def test_delivery_indexes_the_named_records_for_polling_on_polling_backends():
    index, publisher = _index_world([{**GH, "on": []}, {**HOOKED, "on": []}, {**OFF, "on": []}])
    record = make_record(H1, incident={"id": "contoso/shop#7", "platform": "github"})
    publisher.on_lifecycle(record, "delivered", {})
    assert index.handoffs_at("gh", ISSUE) == [H1] and index.handoffs_at("hooked", ISSUE) == [H1]
    assert index.handoffs_at("off", ISSUE) == []
    assert list(index.polled) == [("gh", ISSUE)]


def test_a_write_for_a_closed_investigation_indexes_without_polling():
    index = MemoryInboundStore()
    backend = registry([GH]).shared_memory.find("gh")
    index_record(index, backend, ISSUE, H1, active=False)
    assert index.handoffs_at("gh", ISSUE) == [H1] and index.polled == {}
    index_record(index, backend, ISSUE, H2)
    assert list(index.polled[("gh", ISSUE)]) == [H2]


def test_a_record_keeps_when_it_was_first_indexed(world):
    world.clock.advance(5)
    world.inbound.index_destination("gh", ISSUE, H1, poll=True)
    world.clock.advance(5)
    world.inbound.index_destination("gh", ISSUE, H1, poll=True)
    assert world.inbound.polled[("gh", ISSUE)][H1] == START + timedelta(seconds=5)
    assert isinstance(world.inbound.polled[("gh", ISSUE)][H1], datetime)
