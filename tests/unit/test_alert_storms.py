"""Alert storms: the placement decision (one per alert id, remembered so duplicates get the same one)
and storm folding through the use case with in-memory ports."""

from __future__ import annotations

import json
from collections import Counter
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from handoff.domain.alerts.parsing import parse_alert
from handoff.domain.alerts.records import STATE_ROW, AlertRecord, storm_partition
from handoff.domain.alerts.storms import PLACEMENT_MEMORY, PLACEMENTS_KEPT, StormState, place_alert
from handoff.domain.registry import AlertStorm
from tests.e2e.alert_payloads import envelope, unique_alert_id
from tests.unit.alert_cases import ALERT_EVENTS, fired, registry, routed_of, row
from tests.unit.memory.alerts import AlertWorld

NOW = datetime(2026, 1, 5, 10, 0, tzinfo=UTC)
LIMITS = AlertStorm(threshold=2, window_seconds=60)


def alert(alert_id: str | None = None):
    return parse_alert(
        json.dumps(envelope("metric-static-fired", "unit", alert_id or unique_alert_id())).encode()
    )


def test_the_same_alert_id_gets_the_placement_decided_first():
    first = alert()
    state, placement = place_alert(None, first, NOW, LIMITS, ("own-1", "storm-1"))
    again_state, again = place_alert(state, first, NOW + timedelta(seconds=1), LIMITS, ("own-2", "storm-2"))
    assert again_state is None  # nothing to write
    assert again == placement
    assert (placement.handoff_id, placement.decision) == ("own-1", "own")


def test_a_recalled_placement_does_not_count_again_towards_the_threshold():
    state = None
    first = alert()
    for n in range(5):
        new_state, _ = place_alert(state, first, NOW, LIMITS, (f"own-{n}", f"storm-{n}"))
        state = new_state or state
    assert state is not None
    assert len(state.recent) == 1
    _, other = place_alert(state, alert(), NOW, LIMITS, ("own-x", "storm-x"))
    assert other.decision == "own"


def test_distinct_alerts_beyond_the_threshold_start_and_join_a_storm():
    state: StormState | None = None
    decisions = []
    for n in range(5):
        new_state, placement = place_alert(
            state, alert(), NOW, LIMITS, (f"own-{n}", "storm-a" if n == 2 else "storm-b")
        )
        state = new_state
        decisions.append((placement.decision, placement.handoff_id))
    assert decisions == [
        ("own", "own-0"),
        ("own", "own-1"),
        ("stormStart", "storm-a"),
        ("stormJoin", "storm-a"),
        ("stormJoin", "storm-a"),
    ]


def test_a_placement_is_forgotten_after_a_while():
    first = alert()
    state, _ = place_alert(None, first, NOW, LIMITS, ("own-1", "storm-1"))
    later = NOW + PLACEMENT_MEMORY + timedelta(seconds=1)
    new_state, placement = place_alert(state, first, later, LIMITS, ("own-2", "storm-2"))
    assert placement.handoff_id == "own-2"
    assert new_state is not None
    assert list(new_state.placed) == [first.key]  # the old entry was dropped, the new one kept


def test_no_more_than_so_many_placements_are_kept():
    state: StormState | None = None
    limits = AlertStorm(threshold=10_000, window_seconds=60)
    alerts = [alert() for _ in range(PLACEMENTS_KEPT + 5)]
    for n, each in enumerate(alerts):
        state, _ = place_alert(state, each, NOW, limits, (f"own-{n}", "storm"))
    assert state is not None
    assert len(state.placed) == PLACEMENTS_KEPT
    assert alerts[0].key not in state.placed
    assert alerts[-1].key in state.placed


def test_an_alert_row_written_before_fields_were_dropped_still_reads():
    old = {
        "alert_id": "a",
        "label": "l",
        "route": "r",
        "target": "t",
        "handoff_id": None,
        "last_fired_at": NOW.isoformat(),
        "claimed_at": NOW.isoformat(),
    }
    record = AlertRecord.model_validate_json(json.dumps(old))
    assert (record.alert_id, record.handoff_id, record.fired_count) == ("a", None, 1)
    assert "last_fired_at" not in record.model_dump()


@pytest.fixture
def world() -> AlertWorld:
    return AlertWorld(registry())


# ---------------------------------------------------------------- storms


def storm(world: AlertWorld, count: int) -> list[dict[str, Any]]:
    return [routed_of(world.post(fired(route="storm"))[0]) for _ in range(count)]


def test_more_alerts_than_the_threshold_fold_into_one_storm_handoff(world):
    answers = storm(world, 7)
    assert [a["status"] for a in answers] == ["created"] * 3 + ["stormStarted"] + ["stormJoined"] * 3
    storm_ids = {a["handoffId"] for a in answers[3:]}
    assert len(storm_ids) == 1
    assert len({a["handoffId"] for a in answers}) == 4


def test_the_storm_handoff_says_it_is_a_storm(world):
    answers = storm(world, 4)
    storm_id = answers[3]["handoffId"]
    [(_, request, details)] = [a for a in world.handoffs.accepted if a[0] == storm_id]
    assert request.context.title.startswith("Alert storm: more than 3 alerts for ops within 600 s")
    assert request.intent == "mitigate"
    assert details == {"storm": True, "route": "alert-storm", "sharedMemory": []}


def test_storm_joins_are_audited_in_the_storm_handoff(world):
    answers = storm(world, 6)
    storm_id = answers[3]["handoffId"]
    joins = [e for e in world.handoffs.store.list_audit(storm_id) if e.type == "alertJoinedStorm"]
    assert [e.details["first"] for e in joins] == [True, False, False]
    assert all(e.details["label"] and e.details["target"] and "line" not in e.details for e in joins)


def test_a_storm_start_queues_no_note_and_a_join_queues_one(world):
    storm(world, 4)
    assert world.queue.ops("alertNote") == []
    storm(world, 3)
    assert len(world.queue.ops("alertNote")) == 1  # one queued note covers every join until it runs


def test_the_storm_placement_is_recorded_on_the_alert_row(world):
    bodies = [fired(route="storm") for _ in range(4)]
    answers = [routed_of(world.post(b)[0]) for b in bodies]
    record = row(world, bodies[3])
    assert (record.placement, record.handoff_id) == ("storm", answers[3]["handoffId"])


def test_a_repeat_of_a_storm_alert_counts_in_the_storm_handoff(world):
    bodies = [fired(route="storm") for _ in range(5)]
    answers = [routed_of(world.post(b)[0]) for b in bodies]
    again = routed_of(world.post(bodies[4])[0])
    assert (again["status"], again["handoffId"], again["firedCount"]) == (
        "updated",
        answers[4]["handoffId"],
        2,
    )
    assert "alertRefired" in world.handoffs.store.types(answers[4]["handoffId"])


def test_a_quiet_window_ends_the_storm(world):
    storm(world, 5)
    world.clock.advance(601)
    assert storm(world, 1)[0]["status"] == "created"


def test_targets_storm_separately(world):
    storm(world, 4)
    assert routed_of(world.post(fired())[0])["status"] == "created"


def test_every_notification_of_a_storm_is_in_exactly_one_handoff(world):
    bodies = [fired(route="storm") for _ in range(8)]
    order = [bodies[i % 8] for i in range(30)]
    answers = [routed_of(world.post(b)[0]) for b in order]
    counted: Counter[str] = Counter()
    for handoff_id in {a["handoffId"] for a in answers}:
        events = world.handoffs.store.list_audit(handoff_id)
        counted.update(e.details["alertId"] for e in events if e.type in ALERT_EVENTS)
    assert counted == Counter(b["data"]["essentials"]["alertId"] for b in order)


def test_the_storm_state_keeps_no_more_than_it_reads(world):
    storm(world, 5)
    state = world.store.doc(storm_partition("ops"), STATE_ROW, StormState)
    assert state is not None
    assert set(state.model_dump()) == {"recent", "storm_id", "storm_last_at", "first_alert", "placed"}
    assert len(state.placed) == 5


def test_a_storm_state_row_with_fields_no_longer_kept_still_reads(world):
    old = '{"recent": [], "storm_id": null, "storm_started_at": null, "storm_alerts": 3, "first_alert": null}'
    world.store.rows[(storm_partition("ops"), STATE_ROW)] = old
    assert storm(world, 1)[0]["status"] == "created"


def test_a_storm_handoff_never_stored_is_repaired_from_the_storm_state(world):
    bodies = [fired(route="storm") for _ in range(4)]
    answers = [routed_of(world.post(b)[0]) for b in bodies]
    storm_id = answers[3]["handoffId"]
    del world.handoffs.store.records[storm_id]
    again = routed_of(world.post(bodies[3])[0])
    assert again["handoffId"] == storm_id
    record = world.handoffs.store.get(storm_id)
    assert record is not None
    assert record.stored.request.context.title.startswith("Alert storm")


def test_a_storm_handoff_without_its_storm_state_is_left_alone(world):
    bodies = [fired(route="storm") for _ in range(4)]
    storm_id = [routed_of(world.post(b)[0]) for b in bodies][3]["handoffId"]
    del world.handoffs.store.records[storm_id]
    del world.store.rows[(storm_partition("ops"), STATE_ROW)]
    assert routed_of(world.post(bodies[3])[0])["status"] == "updated"
    assert world.handoffs.store.get(storm_id) is None
