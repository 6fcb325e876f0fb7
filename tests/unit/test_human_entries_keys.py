"""The poll index's keys on Table Storage and the PagerDuty incident ids that name its records: a caller
cannot name a record whose key is another investigation's row (and so stop that investigation's
record being polled when its own handoff closes), and a PagerDuty incident id is held to PagerDuty's
shape at the door and ignored anywhere else it is read."""

from __future__ import annotations

import json
from datetime import timedelta
from itertools import count
from typing import Any

import azure.functions as func
import httpx
import pytest
from azure.core.exceptions import ResourceExistsError, ResourceModifiedError, ResourceNotFoundError
from azure.data.tables import TableEntity, UpdateMode

from handoff.adapters.azure_storage.clients import encode_key
from handoff.adapters.azure_storage.human_entries import TableInboundStore, _handoff_row, _record_row
from handoff.adapters.pagerduty import PagerDutyReader
from handoff.adapters.vendors import WriterContext
from handoff.domain.errors import Unprocessable
from handoff.domain.intake import validate_document
from handoff.domain.models import HandoffRequest
from handoff.domain.shared_memory.config import PagerDutyBackend
from handoff.domain.shared_memory.destinations import known_destination, pagerduty_incident
from handoff.domain.shared_memory.human_entries import HumanEntry
from handoff.domain.shared_memory.webhooks import parse_pagerduty
from handoff.entrypoints import http_api, responses
from handoff.services.human_entries.inbound import HumanInbound
from handoff.services.human_entries.polling import EntryPoller
from handoff.services.shared_memory.publisher import index_record
from handoff.settings import Settings
from tests.unit.conftest import OPS, World, handoff_body
from tests.unit.memory.shared_memory import (
    START,
    FakeClock,
    MemoryAgents,
    MemoryHandoffs,
    MemoryHandoffStore,
    MemoryNotes,
    MemoryQueue,
    MemoryReaders,
    MemoryWriteState,
    make_record,
    registry,
)

VICTIM = "0b7e4c1e-0000-4000-8000-00000000000a"
ATTACKER = "0b7e4c1e-0000-4000-8000-00000000000b"
PD_CONFIG = {
    "name": "pd",
    "type": "pagerduty",
    "baseUrl": "https://api.pagerduty.com",
    "secretSetting": "PD_TOKEN",
    "fromEmail": "oncall@contoso.com",
    "inbound": "poll",
}
PD = PagerDutyBackend(
    name="pd", type="pagerduty", base_url="https://api.pagerduty.com", secret_setting="PD_TOKEN",
    from_email="oncall@contoso.com",
)  # fmt: skip
# Another record's investigation row, named as a record.
COLLIDING = f"P1!{VICTIM}"


class DictTable:
    """A Table Storage table in a dict: the calls TableInboundStore makes, with insert-if-absent, ETags,
    MERGE and rows listed by key as the service lists them."""

    def __init__(self) -> None:
        self.rows: dict[tuple[str, str], TableEntity] = {}
        self._etags = count(1)

    def _put(self, entity: dict[str, Any]) -> None:
        stored = TableEntity(entity)
        stored._metadata = {"etag": f"W/{next(self._etags)}", "timestamp": None}
        self.rows[(entity["PartitionKey"], entity["RowKey"])] = stored

    def create_entity(self, entity: dict[str, Any]) -> None:
        if (entity["PartitionKey"], entity["RowKey"]) in self.rows:
            raise ResourceExistsError("EntityAlreadyExists")
        self._put(entity)

    def upsert_entity(self, entity: dict[str, Any], mode: UpdateMode = UpdateMode.MERGE) -> None:
        current = self.rows.get((entity["PartitionKey"], entity["RowKey"]), {})
        self._put({**current, **entity} if mode == UpdateMode.MERGE else entity)

    def update_entity(
        self, entity: dict[str, Any], mode: UpdateMode, etag: str, match_condition: Any
    ) -> None:
        current = self.rows.get((entity["PartitionKey"], entity["RowKey"]))
        if current is None:
            raise ResourceNotFoundError("ResourceNotFound")
        if current.metadata["etag"] != etag:
            raise ResourceModifiedError("UpdateConditionNotSatisfied")
        self._put({**current, **entity} if mode == UpdateMode.MERGE else entity)

    def delete_entity(self, partition_key: str, row_key: str) -> None:
        if self.rows.pop((partition_key, row_key), None) is None:
            raise ResourceNotFoundError("ResourceNotFound")

    def query_entities(self, query_filter: str, parameters: dict[str, str], **_: Any) -> list[TableEntity]:
        assert query_filter == "PartitionKey eq @pk"
        return [row for (pk, _rk), row in sorted(self.rows.items()) if pk == parameters["pk"]]


class DictClients:
    def __init__(self) -> None:
        self.tables: dict[str, DictTable] = {}

    def table(self, name: str) -> DictTable:
        return self.tables.setdefault(name, DictTable())


def polled(store: TableInboundStore) -> dict[str, list[str]]:
    """The records the poller would list on ``pd``, with the investigations on each."""
    return {r.destination: [h.handoff_id for h in r.handoffs] for r in store.polled_records("pd", 100)}


# ---------------------------------------------------------------- the row keys (Table Storage)


def test_a_record_named_like_another_records_investigation_row_cannot_forget_it():
    store = TableInboundStore(DictClients(), clock=lambda: START)  # type: ignore[arg-type]
    store.index_destination("pd", "P1", VICTIM, poll=True)
    store.index_destination("pd", COLLIDING, ATTACKER, poll=True)

    # The attacker's handoff closes: the poller forgets its record whole.
    store.forget("pd", COLLIDING, [ATTACKER], whole=True)

    assert polled(store) == {"P1": [VICTIM]}


def test_a_record_named_like_another_records_investigation_row_cannot_take_its_place():
    store = TableInboundStore(DictClients(), clock=lambda: START)  # type: ignore[arg-type]
    store.index_destination("pd", COLLIDING, ATTACKER, poll=True)
    [record] = store.polled_records("pd", 100)
    assert store.claim_poll("pd", record, START)  # the attacker's record is polled first

    store.index_destination("pd", "P1", VICTIM, poll=True)

    assert polled(store) == {COLLIDING: [ATTACKER], "P1": [VICTIM]}


@pytest.mark.parametrize(
    "destination",
    ["contoso/shop#7", "PT4KHLK", "Q02JTSNZWHSEKV", "OPS-12", "9d385017c611228701d22104cc95c371", "a b%c/d"],
)
def test_the_records_vendors_have_keep_the_keys_their_rows_were_stored_under(destination):
    assert _record_row(destination) == encode_key(destination)
    assert _handoff_row(destination, VICTIM) == encode_key(f"{destination}!{VICTIM}")


def test_a_bang_in_a_record_is_encoded_so_the_first_bang_of_a_key_ends_the_record():
    assert _record_row(COLLIDING) == f"P1%21{VICTIM}"
    assert _handoff_row(COLLIDING, ATTACKER) == f"P1%21{VICTIM}!{ATTACKER}"
    assert _record_row("P1%21x") != _record_row("P1!x")  # "%" is encoded too: the encoding is one-to-one
    keys = {
        _record_row("P1"),
        _handoff_row("P1", VICTIM),
        _record_row(COLLIDING),
        _handoff_row(COLLIDING, "x"),
    }
    assert len(keys) == 4


# ---------------------------------------------------------------- the attack, through the poller


@pytest.mark.attack("authorization")
def test_a_caller_cannot_stop_another_investigations_incident_being_polled():
    """Two handoffs as storage reads them back (the attacker's written before incident ids were held to
    PagerDuty's shape at the door): the victim's on incident P1, the attacker's naming ``P1!<victim>``.
    Once the attacker's handoff closes, a person's ``stop:`` note on P1 still reaches the victim."""
    clock = FakeClock()
    handoffs = MemoryHandoffs(
        settings=Settings(public_base_url="https://broker.example.com", human_poll_seconds=60),
        registry=registry([PD_CONFIG]),
        store=MemoryHandoffStore(clock),
        queue=MemoryQueue(),
        agents=MemoryAgents(),
        clock=clock,
    )
    inbound = TableInboundStore(DictClients(), clock=clock)  # type: ignore[arg-type]
    readers = MemoryReaders()
    humans = HumanInbound(handoffs.context, inbound, MemoryNotes(), environ={})
    poller = EntryPoller(
        handoffs.context, index=inbound, readers=readers, holds=MemoryWriteState(), claimer=humans.claimer
    )
    backend = handoffs.registry.shared_memory.find("pd")
    assert backend is not None
    for handoff_id, incident in ((VICTIM, "P1"), (ATTACKER, COLLIDING)):
        record = make_record(handoff_id, incident={"id": incident, "platform": "pagerduty"})
        handoffs.store.add(record)
        index_record(inbound, backend, known_destination(backend, record, {}), handoff_id)  # as intake does

    handoffs.store.records[ATTACKER].state.status = "handedBack"
    poller.poll()
    readers.add(
        HumanEntry(
            backend="pd", platform="pagerduty", entry_id="PNOTE1", destination="P1", author="Alice",
            author_id="PUSER1", at=clock.advance(30), text="stop: do not fail over", url=None, delivery_id="",
        )
    )  # fmt: skip
    clock.advance(60)
    poller.poll()

    assert polled(inbound) == {"P1": [VICTIM]}
    assert [(m["handoffId"], m["entry"]["override"]) for m in handoffs.queue.messages] == [(VICTIM, True)]


# ---------------------------------------------------------------- PagerDuty incident ids at the door

BAD_IDS = [COLLIDING, "pt4khlk", "INC-1234", "P1 2", "P" * 65, "P1/../x", "P\u0661"]


@pytest.mark.parametrize("incident_id", BAD_IDS)
@pytest.mark.parametrize("platform", ["pagerduty", "PagerDuty"])
def test_an_incident_id_pagerduty_never_issues_is_422_naming_the_field(world: World, incident_id, platform):
    body = handoff_body(world.source_thread())
    body["context"]["incident"] = {"id": incident_id, "platform": platform}

    with pytest.raises(Unprocessable) as info:
        world.accept(body)

    assert [e.field for e in info.value.errors] == ["/context/incident/id"]
    assert "PagerDuty incident id" in info.value.errors[0].message
    assert world.store.ids() == [] and world.queue.sent == []


@pytest.mark.attack("urls")
def test_the_rest_api_answers_a_bad_incident_id_with_a_problem_naming_the_field(
    monkeypatch: pytest.MonkeyPatch, world: World
):
    monkeypatch.setattr(http_api, "get_handoffs", lambda: world.handoffs)
    monkeypatch.setattr(responses, "caller_of", lambda req, rate_limited=True: OPS)
    create = http_api.create_handoff._function.get_user_function()  # type: ignore[attr-defined]
    body = handoff_body(world.source_thread())
    body["context"]["incident"] = {"id": COLLIDING, "platform": "pagerduty"}

    answer = create(
        func.HttpRequest(
            "POST", "http://localhost/api/handoffs", body=json.dumps(body).encode(),
            headers={"Content-Type": "application/json"},
        )
    )  # fmt: skip

    assert (answer.status_code, answer.mimetype) == (422, "application/problem+json")
    problem = json.loads(answer.get_body())
    assert problem["status"] == 422 and "/context/incident/id" in problem["detail"]
    assert [e["field"] for e in problem["errors"]] == ["/context/incident/id"]


def test_an_a2a_data_part_names_the_field_under_its_own_pointer():
    body = handoff_body("t")
    body["context"]["incident"] = {"id": COLLIDING, "platform": "pagerduty"}
    with pytest.raises(Unprocessable) as info:
        validate_document(body, HandoffRequest, prefix="/message/parts/0/data")
    assert [e.field for e in info.value.errors] == ["/message/parts/0/data/context/incident/id"]


@pytest.mark.parametrize(
    "incident",
    [
        {"id": "PT4KHLK", "platform": "pagerduty"},
        {"id": " Q02JTSNZWHSEKV ", "platform": " PAGERDUTY "},
        {"id": "P" * 64, "platform": "pagerduty"},
        {"id": COLLIDING, "platform": "opsgenie"},  # only PagerDuty's ids are held to PagerDuty's shape
        {"id": COLLIDING},
    ],
)
def test_pagerduty_ids_and_other_platforms_ids_are_accepted(world: World, incident):
    body = handoff_body(world.source_thread())
    body["context"]["incident"] = incident
    view, created = world.accept(body)
    assert created and view.status == "accepted"


def test_a_handoff_stored_before_the_rule_is_still_read_back():
    record = make_record(VICTIM, incident={"id": COLLIDING, "platform": "pagerduty"})
    assert record.stored.request.context.incident is not None
    assert record.stored.request.context.incident.id == COLLIDING


# ---------------------------------------------------------------- everywhere else an id is read


def test_an_id_of_another_shape_names_no_record_wherever_it_is_read():
    stored = make_record(VICTIM, incident={"id": COLLIDING, "platform": "pagerduty"})
    assert pagerduty_incident(stored, {}) is None and known_destination(PD, stored, {}) is None
    assert pagerduty_incident(stored, {"pagerdutyIncidentId": "PT4KHLK"}) == "PT4KHLK"
    assert known_destination(PD, make_record(VICTIM), {"pagerdutyIncidentId": COLLIDING}) is None
    for data in (
        {"pagerdutyIncidentId": COLLIDING},
        {"customProperties": {"pagerdutyIncidentId": COLLIDING}},
    ):
        record = make_record(VICTIM, evidence=[{"kind": "data", "title": "alert", "data": data}])
        assert known_destination(PD, record, {}) is None


def test_a_webhook_note_on_an_id_of_another_shape_is_ignored():
    event = {
        "event": {
            "id": "01ABC", "event_type": "incident.annotated", "occurred_at": "2026-12-01T03:52:00Z",
            "agent": {"id": "PUSER1", "summary": "Alice"},
            "data": {"incident": {"id": COLLIDING}, "id": "PNOTE1", "content": "stop: no"},
        }
    }  # fmt: skip
    entry, why = parse_pagerduty(PD, event, START)
    assert entry is None and "not a PagerDuty incident id" in why


def test_a_poll_never_asks_pagerduty_for_an_id_of_another_shape():
    asked: list[httpx.Request] = []
    ctx = WriterContext(
        http=httpx.Client(transport=httpx.MockTransport(lambda r: asked.append(r) or httpx.Response(500))),
        settings=Settings.from_env({}), state=None,  # type: ignore[arg-type]
        clock=lambda: START, environ={"PD_TOKEN": "secret"},
    )  # fmt: skip
    assert PagerDutyReader(PD, ctx).entries_since(COLLIDING, START - timedelta(hours=1)) == []
    assert asked == []
