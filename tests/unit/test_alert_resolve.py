"""``Resolved`` notifications through in-memory ports."""

from __future__ import annotations

import pytest

from handoff.domain.alerts.parsing import alert_key
from handoff.domain.alerts.records import ALERT_ROW, AlertRecord, alert_partition
from tests.unit.alert_cases import fired, registry, resolved, routed_of, row
from tests.unit.memory.alerts import AlertWorld


@pytest.fixture
def world() -> AlertWorld:
    return AlertWorld(registry())


# ---------------------------------------------------------------- resolve


def test_resolved_for_an_alert_never_seen_firing_is_recorded_and_routed_nowhere(world):
    receipt, is_routed = world.post(resolved(fired()))
    assert (is_routed, receipt["routed"]) == (False, [])
    assert "never seen firing" in receipt["detail"]
    assert [kind for _, kind, _ in world.store.events] == ["resolvedUnknown"]
    assert world.handoffs.accepted == []


def test_resolved_after_fired_resolves_the_alert_once(world):
    body = fired()
    handoff_id = routed_of(world.post(body)[0])["handoffId"]
    receipt, is_routed = world.post(resolved(body, resolvedDateTime="2026-01-05T11:00:00Z"))
    routed = routed_of(receipt)
    assert is_routed
    assert (routed["status"], routed["handoffId"], receipt["monitorCondition"]) == (
        "resolved",
        handoff_id,
        "Resolved",
    )
    assert world.handoffs.store.types(handoff_id).count("alertResolved") == 1
    assert world.handoffs.resolved == [(handoff_id, {})]
    [message] = world.queue.ops("alertResolved")
    key = alert_key(body["data"]["essentials"]["alertId"])
    assert message == {
        "op": "alertResolved",
        "handoffId": handoff_id,
        "alertKey": key,
        "seq": 1,
        "attempt": 1,
    }
    record = row(world, body)
    assert (record.condition, record.resolved_count, record.resolved_at) == (
        "resolved",
        1,
        "2026-01-05T11:00:00Z",
    )


def test_a_resolution_without_a_time_takes_the_time_it_arrived(world):
    body = fired()
    world.post(body)
    resolution = resolved(body)
    resolution["data"]["essentials"].pop("resolvedDateTime", None)
    world.post(resolution)
    assert row(world, body).resolved_at == world.clock.now.isoformat()


@pytest.mark.parametrize("given", ["PD123", " PD123 "])
def test_a_resolution_passes_the_pagerduty_incident_on(world, given):
    body = fired()
    body["data"]["customProperties"]["pagerdutyIncidentId"] = given
    handoff_id = routed_of(world.post(body)[0])["handoffId"]
    world.post(resolved(body))
    assert world.handoffs.resolved == [(handoff_id, {"pagerdutyIncidentId": "PD123"})]


@pytest.mark.attack("urls")
@pytest.mark.parametrize(
    "incident", ["P1!0b7e4c1e-0000-4000-8000-000000000001", "PD1 password=Hunt3r2xyzQ", 42]
)
def test_a_pagerduty_incident_of_another_shape_is_passed_on_as_none(world, incident):
    # The details travel as they are in queue messages and write states: only PagerDuty's id shape goes.
    body = fired()
    body["data"]["customProperties"]["pagerdutyIncidentId"] = incident
    handoff_id = routed_of(world.post(body)[0])["handoffId"]
    world.post(resolved(body))
    assert world.handoffs.resolved == [(handoff_id, {})]


def test_a_duplicate_resolution_is_audited_and_queues_nothing(world):
    body = fired()
    handoff_id = routed_of(world.post(body)[0])["handoffId"]
    world.post(resolved(body))
    again, _ = world.post(resolved(body))
    assert routed_of(again)["status"] == "alreadyResolved"
    types = world.handoffs.store.types(handoff_id)
    assert (types.count("alertResolved"), types.count("alertResolvedAgain")) == (1, 1)
    assert len(world.queue.ops("alertResolved")) == 1
    assert len(world.handoffs.resolved) == 1


def test_firing_after_a_resolution_reopens_and_a_new_resolution_counts_again(world):
    body = fired()
    handoff_id = routed_of(world.post(body)[0])["handoffId"]
    world.post(resolved(body))
    refired, _ = world.post(body)
    assert routed_of(refired)["status"] == "updated"
    [event] = [e for e in world.handoffs.store.list_audit(handoff_id) if e.type == "alertRefired"]
    assert event.details["reopened"] is True
    again, _ = world.post(resolved(body))
    assert routed_of(again)["status"] == "resolved"
    assert [m["seq"] for m in world.queue.ops("alertResolved")] == [1, 2]


def test_resolved_for_an_alert_still_being_placed_places_it_and_resolves(world):
    body = fired()
    essentials = body["data"]["essentials"]
    claim = AlertRecord(alert_id=essentials["alertId"], label="x", route="alert-samples", target="checkout")
    world.store.insert(alert_partition(alert_key(essentials["alertId"])), ALERT_ROW, claim)
    receipt, _ = world.post(resolved(body))
    routed = routed_of(receipt)
    assert routed["status"] == "resolved"
    assert world.handoffs.store.types(routed["handoffId"]) == ["accepted", "alertResolved"]


def test_resolved_in_a_storm_resolves_the_storm_member(world):
    bodies = [fired(route="storm") for _ in range(4)]
    answers = [routed_of(world.post(b)[0]) for b in bodies]
    receipt, _ = world.post(resolved(bodies[3]))
    assert routed_of(receipt)["handoffId"] == answers[3]["handoffId"]
