"""The use cases as the composition root wires them: without the optional ports, with a lifecycle
listener that fails, with what the alerts and human-entry use cases are given, and as several
broker instances over one storage."""

from __future__ import annotations

from typing import Any

import pytest

from handoff.domain.errors import ServiceUnavailable
from handoff.domain.history import HistoryQuery
from handoff.domain.models import HandoffRequest
from handoff.domain.records import HandoffRecord
from handoff.domain.work import EntryPayload, EntryThread, HumanEntry
from handoff.services.human_entries.inbound import HumanInbound
from handoff.services.lifecycle import publish_alert_resolved
from tests.unit.conftest import CHECKOUT, OPERATOR, OPS, REGISTRY_DATA, World, build_world, handoff_body
from tests.unit.memory.shared_memory import MemoryInboundStore

SYSTEM_ID = "00000000-0000-4000-8000-0000000000a1"


# ---------------------------------------------------------------- without the optional ports


def test_without_a_history_index_search_is_503() -> None:
    world = build_world(bare=True)
    with pytest.raises(ServiceUnavailable, match="history index is not configured"):
        world.queries.search_history(HistoryQuery(), OPERATOR)


def test_without_the_optional_ports_a_handoff_still_goes_round_trip() -> None:
    world = build_world(bare=True)
    handoff_id = world.hand_off()
    world.hand_back(handoff_id)
    world.run()
    assert world.state(handoff_id).status == "handedBack"
    assert world.history.entries() == [] and world.lifecycle == []
    assert world.chains.members(handoff_id) == []


def test_without_a_chain_index_only_the_depth_rule_applies() -> None:
    world = build_world(bare=True, max_pair_repeats=1)
    root = world.hand_off()
    thread = world.state(root).target_thread_id
    body = handoff_body(thread, source="checkout", target="ops", parentHandoffId=root)
    back, _ = world.accept(body, CHECKOUT)
    world.run()
    body = handoff_body(world.state(back.id).target_thread_id, parentHandoffId=back.id)
    again, new = world.accept(body, OPS)  # ops → checkout a second time: no slots to count
    assert new and again.depth == 2


def test_without_an_a2a_client_an_a2a_target_fails_at_once() -> None:
    world = build_world(bare=True)
    view, _ = world.accept(handoff_body(world.source_thread(), target="partner"))
    world.run()
    state = world.state(view.id)
    assert (state.status, state.last_error) == ("failed", "no A2A client is configured")
    assert world.queue.poison[0]["reason"] == "no A2A client is configured"


# ---------------------------------------------------------------- the lifecycle listener


class _Failing:
    def __init__(self) -> None:
        self.calls = 0

    def on_lifecycle(self, record: HandoffRecord, point: str, details: dict[str, Any]) -> None:
        self.calls += 1
        raise RuntimeError("listener down")


def test_a_failing_lifecycle_listener_never_fails_the_handoff() -> None:
    listener = _Failing()
    world = build_world(listener=listener)
    handoff_id = world.hand_off()
    world.hand_back(handoff_id)
    world.run()
    assert world.state(handoff_id).status == "handedBack"
    assert listener.calls == 2  # delivered, handedBack


# ---------------------------------------------------------------- what alerts and human entries are given


def _system_request() -> HandoffRequest:
    return HandoffRequest.model_validate(handoff_body(source="azure-monitor"))


def test_human_entries_run_over_the_shared_context_as_delivery_work(world: World) -> None:
    humans = HumanInbound(world.handoffs.context, MemoryInboundStore())
    world.worker.register(HumanEntry, humans.process)  # as the composition root registers it
    handoff_id = world.hand_off()
    thread = world.state(handoff_id).target_thread_id
    entry = EntryPayload(
        backend="gh", platform="github", entry_id="99", record="contoso/shop#7", author="alice",
        at="2026-12-01T03:52:00+00:00", text="Customer impact is EU only",
    )  # fmt: skip
    threads = [EntryThread(agent="checkout", thread_id=thread)]
    world.process(HumanEntry(handoff_id=handoff_id, threads=threads, entry=entry).wire())
    assert world.event(handoff_id, "humanEntryPosted") == {"backend": "gh", "entryId": "99", "threads": 1}
    (posted,) = [t for t in world.agents.threads_of("checkout")[0].texts() if "EU only" in t]
    assert posted.startswith(f"[Handoff {handoff_id}] Human note from @alice on GitHub")


def test_the_intake_starts_system_handoffs(world: World) -> None:
    record, new = world.intake.accept_system(_system_request(), SYSTEM_ID, OPERATOR, {"alertRule": "cpu"})
    assert new and record.stored.source_agent == "azure-monitor"


def test_a_system_handoff_is_delivered_without_a_source_thread(world: World) -> None:
    world.intake.accept_system(_system_request(), SYSTEM_ID, OPERATOR)
    world.run()
    state = world.state(SYSTEM_ID)
    assert (state.status, state.crosslink) == ("delivered", "noSourceThread")
    (thread,) = world.agents.threads_of("checkout")
    assert "Azure Monitor" in thread.messages[0].text


def test_alert_resolution_is_published_to_the_listener(world: World) -> None:
    world.intake.accept_system(_system_request(), SYSTEM_ID, OPERATOR)
    publish_alert_resolved(world.handoffs.context, SYSTEM_ID, {"sharedMemory": ["github"]})
    assert world.lifecycle[-1] == (SYSTEM_ID, "alertResolved", {"sharedMemory": ["github"]})


# ---------------------------------------------------------------- several instances


def test_a_second_instance_drops_follow_ups_of_a_target_it_does_not_know(world: World) -> None:
    view, _ = world.accept(handoff_body(world.source_thread(), target="watched"))
    world.step()  # delivered; the first watch is queued
    registry = {"agents": [a for a in REGISTRY_DATA["agents"] if a["name"] != "watched"]}
    other = build_world(registry, over=world)
    queued = world.queue.take()
    assert queued is not None and queued.message["op"] == "watch"
    other.process(queued.message)
    assert world.agents.ops("list_messages") == [] and world.queue.messages() == []
    assert world.state(view.id).lease_owner is None


def test_instances_share_the_idempotency_secret_through_storage(world: World) -> None:
    other = build_world(over=world)
    first, _ = world.accept(handoff_body(), key="k")
    again, new = other.accept(handoff_body(), key="k")
    assert (again.id, new) == (first.id, False)
