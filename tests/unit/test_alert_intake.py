"""``POST /api/alerts`` through in-memory ports: placement, dedupe, storage outages."""

from __future__ import annotations

from collections import Counter
from typing import Any

import pytest

from handoff.domain.alerts.parsing import alert_key
from handoff.domain.alerts.records import ALERT_ROW, AlertRecord, alert_partition
from handoff.domain.errors import BadRequest, ServiceUnavailable
from handoff.entrypoints.responses import to_problem
from handoff.ports import StorageUnavailable
from tests.e2e.alert_payloads import unique_alert_id
from tests.unit.alert_cases import SUB, fired, registry, resolved, routed_of, row
from tests.unit.memory.alerts import AlertWorld


@pytest.fixture
def world() -> AlertWorld:
    return AlertWorld(registry())


# ---------------------------------------------------------------- placement


def test_a_first_alert_opens_its_own_handoff(world):
    receipt, is_routed = world.post(fired())
    routed = routed_of(receipt)
    assert is_routed
    assert (routed["status"], routed["firedCount"]) == ("created", 1)
    assert (routed["route"], routed["target"]) == ("alert-samples", "checkout")
    record = world.handoffs.store.get(routed["handoffId"])
    assert record is not None
    assert (record.stored.source_agent, record.stored.target_agent) == ("azure-monitor", "checkout")
    assert world.handoffs.store.types(routed["handoffId"]) == ["accepted", "alertFired"]


def test_the_receipt_names_the_alert_and_links_the_handoff(world):
    body = fired()
    receipt, _ = world.post(body)
    routed = routed_of(receipt)
    assert receipt["alertId"] == body["data"]["essentials"]["alertId"]
    assert receipt["monitorCondition"] == "Fired"
    base = f"https://broker.example/api/handoffs/{routed['handoffId']}"
    assert routed["links"] == {"self": base, "audit": f"{base}/audit"}


def test_the_handoff_request_carries_the_alert(world):
    body = fired()
    receipt, _ = world.post(body)
    [(handoff_id, request, details)] = world.handoffs.accepted
    assert handoff_id == routed_of(receipt)["handoffId"]
    essentials = body["data"]["essentials"]
    assert request.correlation_id == essentials["alertId"]
    assert request.intent == "investigate"
    assert request.context.title.startswith(essentials["alertRule"])
    assert request.context.incident is not None
    assert request.context.incident.id == essentials["alertId"]
    assert details == {
        "alertId": essentials["alertId"],
        "alertRule": essentials["alertRule"],
        "route": "alert-samples",
        "sharedMemory": [],
    }


def test_an_alert_id_too_long_for_a_correlation_id_is_left_out_of_it(world):
    world.post(fired(f"/subscriptions/{SUB}/alerts/" + "a" * 600))
    [(_, request, _)] = world.handoffs.accepted
    assert request.correlation_id is None


def test_the_alert_row_records_where_the_alert_went(world):
    body = fired()
    receipt, _ = world.post(body)
    record = row(world, body)
    assert record.handoff_id == routed_of(receipt)["handoffId"]
    assert (record.placement, record.route, record.target) == ("own", "alert-samples", "checkout")
    assert record.label == body["data"]["essentials"]["alertRule"]
    assert (record.fired_count, record.condition) == (1, "fired")


def test_the_fired_audit_names_the_notification(world):
    body = fired()
    receipt, _ = world.post(body)
    [event] = [
        e for e in world.handoffs.store.list_audit(routed_of(receipt)["handoffId"]) if e.type == "alertFired"
    ]
    essentials = body["data"]["essentials"]
    assert event.details["alertId"] == essentials["alertId"]
    assert event.details["route"] == "alert-samples"
    assert event.details["monitorCondition"] == "Fired"
    assert event.details["receivedAt"] == world.clock.now.isoformat()
    assert event.actor == "system"


def test_an_alert_no_route_matches_is_logged_and_opens_nothing(world):
    body = fired(route="nowhere")
    receipt, is_routed = world.post(body)
    assert (is_routed, receipt["routed"], receipt["detail"]) == (False, [], "no alert route matches")
    assert world.handoffs.accepted == []
    [(partition, kind, details)] = world.store.events
    assert (partition, kind) == (alert_partition(alert_key(details["alertId"])), "unrouted")


def test_a_payload_that_is_not_the_common_schema_is_refused_and_stores_nothing(world):
    with pytest.raises(BadRequest, match="enable the common alert schema"):
        world.intake.receive(b'{"schemaId": "Microsoft.Insights/activityLogs"}', world.caller)
    assert world.store.rows == {}


# ---------------------------------------------------------------- dedupe


def test_the_same_alert_id_twice_makes_one_handoff(world):
    body = fired()
    first, _ = world.post(body)
    second, _ = world.post(body)
    assert [routed_of(r)["status"] for r in (first, second)] == ["created", "updated"]
    assert [routed_of(r)["firedCount"] for r in (first, second)] == [1, 2]
    assert routed_of(first)["handoffId"] == routed_of(second)["handoffId"]
    assert len(world.handoffs.accepted) == 1


def test_alert_ids_compare_without_case(world):
    alert_id = unique_alert_id()
    first, _ = world.post(fired(alert_id))
    second, _ = world.post(fired(alert_id.upper()))
    assert routed_of(second)["handoffId"] == routed_of(first)["handoffId"]
    assert routed_of(second)["status"] == "updated"


def test_every_repeat_is_counted_and_audited(world):
    body = fired()
    answers = [world.post(body)[0] for _ in range(4)]
    handoff_id = routed_of(answers[0])["handoffId"]
    assert [routed_of(a)["firedCount"] for a in answers] == [1, 2, 3, 4]
    types = Counter(world.handoffs.store.types(handoff_id))
    assert (types["accepted"], types["alertFired"], types["alertRefired"]) == (1, 1, 3)
    refired = [e for e in world.handoffs.store.list_audit(handoff_id) if e.type == "alertRefired"]
    assert [e.details["firedCount"] for e in refired] == [2, 3, 4]
    assert {e.details["reopened"] for e in refired} == {False}
    assert row(world, body).fired_count == 4


def test_a_repeat_records_the_fired_time_it_reports(world):
    body = fired()
    world.post(body)
    world.post(fired(body["data"]["essentials"]["alertId"], firedDateTime="2026-01-05T12:00:00Z"))
    assert row(world, body).last_fired_reported == "2026-01-05T12:00:00Z"


def test_a_duplicate_places_an_alert_whose_first_receiver_stopped(world):
    body = fired()
    essentials = body["data"]["essentials"]
    # The first receiver inserted the row and stopped before placing the alert.
    claim = AlertRecord(alert_id=essentials["alertId"], label="x", route="alert-samples", target="checkout")
    world.store.insert(alert_partition(alert_key(essentials["alertId"])), ALERT_ROW, claim)
    receipt, is_routed = world.post(body)
    routed = routed_of(receipt)
    assert is_routed
    assert (routed["status"], routed["firedCount"]) == ("updated", 2)
    assert world.handoffs.store.get(routed["handoffId"]) is not None
    assert world.handoffs.store.types(routed["handoffId"]) == ["accepted", "alertRefired"]
    assert row(world, body).handoff_id == routed["handoffId"]


def test_a_duplicate_during_placement_gets_the_same_handoff_without_waiting(world):
    body = fired()
    answers: list[dict[str, Any]] = []

    def duplicate_arrives(partition: str, row_key: str) -> None:
        if partition.startswith("storm-"):
            world.store.before_update = None
            answers.append(world.post(body)[0])  # runs while the first receiver places the alert

    world.store.before_update = duplicate_arrives
    first, _ = world.post(body)
    [second] = answers
    assert routed_of(first)["handoffId"] == routed_of(second)["handoffId"]
    assert [routed_of(first)["status"], routed_of(second)["status"]] == ["created", "updated"]
    assert sorted([routed_of(first)["firedCount"], routed_of(second)["firedCount"]]) == [1, 2]
    types = Counter(world.handoffs.store.types(routed_of(first)["handoffId"]))
    assert (types["accepted"], types["alertFired"], types["alertRefired"]) == (1, 1, 1)


def test_the_first_receiver_keeps_a_placement_a_duplicate_recorded_first(world):
    body = fired()
    key = alert_key(body["data"]["essentials"]["alertId"])
    answers: list[dict[str, Any]] = []

    def duplicate_places_first(partition: str, row_key: str) -> None:
        if partition == alert_partition(key):
            world.store.before_update = None
            answers.append(world.post(body)[0])

    world.store.before_update = duplicate_places_first
    first, _ = world.post(body)
    assert routed_of(first)["handoffId"] == routed_of(answers[0])["handoffId"]
    assert len(world.handoffs.accepted) == 1


def test_a_cached_row_not_yet_placed_is_read_again(world):
    body = fired()
    essentials = body["data"]["essentials"]
    partition = alert_partition(alert_key(essentials["alertId"]))
    claim = AlertRecord(alert_id=essentials["alertId"], label="x", route="alert-samples", target="checkout")
    world.store.insert(partition, ALERT_ROW, claim)
    world.store.read(partition, ALERT_ROW, AlertRecord)  # this process saw the row before it was placed
    placed = claim.model_copy(
        update={"handoff_id": "11111111-1111-4111-8111-111111111111", "placement": "own"}
    )
    world.store.rows[(partition, ALERT_ROW)] = placed.model_dump_json()
    receipt, _ = world.post(body)
    assert routed_of(receipt)["handoffId"] == placed.handoff_id


def test_a_placed_alert_whose_handoff_was_never_stored_is_repaired(world):
    body = fired()
    receipt, _ = world.post(body)
    handoff_id = routed_of(receipt)["handoffId"]
    world.handoffs.store.records.clear()  # the first receiver stopped before storing the handoff
    again, _ = world.post(body)
    assert routed_of(again)["handoffId"] == handoff_id
    assert world.handoffs.store.get(handoff_id) is not None


def test_a_known_handoff_is_not_looked_up_again(world):
    body = fired()
    world.post(body)
    world.post(body)
    lookups: list[str] = []
    get = world.handoffs.store.get

    def counted_get(handoff_id: str):
        lookups.append(handoff_id)
        return get(handoff_id)

    world.handoffs.store.get = counted_get
    world.post(body)
    assert lookups == []


def test_an_unplaced_alert_whose_route_was_removed_still_gets_a_handoff(world):
    body = fired()
    essentials = body["data"]["essentials"]
    claim = AlertRecord(alert_id=essentials["alertId"], label="x", route="gone", target="checkout")
    world.store.insert(alert_partition(alert_key(essentials["alertId"])), ALERT_ROW, claim)
    receipt, _ = world.post(body)
    routed = routed_of(receipt)
    assert (routed["route"], routed["target"]) == ("gone", "checkout")
    assert world.handoffs.store.get(routed["handoffId"]) is not None


# ---------------------------------------------------------------- storage outage


def test_storage_down_answers_503_so_azure_monitor_retries(world):
    world.store.down = True
    with pytest.raises(StorageUnavailable) as raised:
        world.post(fired())
    problem = to_problem(raised.value, "/api/alerts")
    assert problem.status == 503
    assert "Retry-After" in problem.headers


def test_storage_down_for_a_resolution_is_unavailable_too(world):
    world.store.down = True
    with pytest.raises(StorageUnavailable):
        world.post(resolved(fired()))


def test_the_retry_after_an_outage_lands_once(world):
    body = fired()
    world.store.down = True
    with pytest.raises(StorageUnavailable):
        world.post(body)
    world.store.down = False
    receipt, _ = world.post(body)
    assert routed_of(receipt)["status"] == "created"
    assert len(world.handoffs.accepted) == 1


def test_an_outage_between_recording_and_placing_is_finished_by_the_retry(world):
    body = fired()

    def storage_fails(partition: str, row_key: str) -> None:
        world.store.down = True
        world.store.before_update = None
        raise StorageUnavailable("down")

    world.store.before_update = storage_fails
    with pytest.raises(StorageUnavailable):
        world.post(body)
    world.store.down = False
    receipt, _ = world.post(body)
    routed = routed_of(receipt)
    assert world.handoffs.store.get(routed["handoffId"]) is not None
    assert row(world, body).handoff_id == routed["handoffId"]


def test_a_row_that_vanished_is_a_503_not_a_crash(world):
    body = fired()
    world.post(body)
    world.store.rows.clear()
    with pytest.raises(ServiceUnavailable):
        world.post(body)


def test_a_row_that_vanished_during_placement_is_a_503(world):
    body = fired()
    key = alert_key(body["data"]["essentials"]["alertId"])

    def row_deleted(partition: str, row_key: str) -> None:
        if partition == alert_partition(key):
            world.store.rows.pop((partition, row_key), None)

    world.store.before_update = row_deleted
    with pytest.raises(ServiceUnavailable) as raised:
        world.post(body)
    assert raised.value.headers == {"Retry-After": "5"}


def test_a_row_another_receiver_inserted_and_that_is_gone_is_a_503(world):
    world.store.insert = lambda partition, row_key, doc: False  # another receiver holds the row
    with pytest.raises(ServiceUnavailable):
        world.post(fired())


def test_the_set_of_known_handoffs_stays_bounded(world, monkeypatch):
    monkeypatch.setattr("handoff.services.alert_intake.KNOWN_HANDOFFS_KEPT", 2)
    bodies = [fired() for _ in range(3)]
    for body in bodies:
        world.post(body)
        world.post(body)
    assert len(world.intake._known_handoffs) == 1  # cleared when full, then the newest added
