"""Lifecycle points become queued shared-memory writes (through in-memory ports)."""

from __future__ import annotations

import logging

import pytest

from handoff.services.shared_memory.publisher import SharedMemoryPublisher, destinations
from tests.unit.memory.shared_memory import make_record, registry
from tests.unit.memory.shared_memory_world import (
    GH,
    H1,
    H2,
    JIRA,
    PD,
    SN,
    World,
    make_world,
)


@pytest.fixture
def world() -> World:
    w = make_world()
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
    w = make_world()
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
