"""Delivery-queue work messages: the wire shape of every kind, and what the worker does with a message
that is not work it can run (parked on the poison queue with the reason, never dropped)."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import pytest

from handoff.domain.audit_events import Actor, EventType
from handoff.domain.models import AuditEvent, HandoffRequest
from handoff.domain.records import HandoffRecord, HandoffState, StoredRequest
from handoff.domain.registry import Registry
from handoff.domain.work import (
    WORK_KINDS,
    AlertNote,
    Deliver,
    HandBack,
    MalformedWork,
    parse_work,
)
from handoff.services.handoffs import build_handoffs
from handoff.settings import Settings
from tests.e2e.helpers import handoff_body

HANDOFF_ID = "5a0e9a4e-1111-4111-8111-000000000001"
ENTRY = {
    "backend": "github", "platform": "GitHub", "entryId": "c1", "record": "org/repo#1", "author": "ana",
    "at": "2026-01-01T00:00:00+00:00", "text": "override: roll back", "url": None, "override": True,
}  # fmt: skip
# Every message as the broker has always written it.
WIRE = [
    {"op": "deliver", "handoffId": HANDOFF_ID, "attempt": 1},
    {"op": "handback", "handoffId": HANDOFF_ID, "seq": 2, "attempt": 3},
    {"op": "a2aPoll", "handoffId": HANDOFF_ID, "attempt": 1},
    {"op": "watch", "handoffId": HANDOFF_ID, "attempt": 2},
    {"op": "alertResolved", "handoffId": HANDOFF_ID, "alertKey": "k", "seq": 1, "attempt": 1},
    {"op": "alertNote", "handoffId": HANDOFF_ID, "attempt": 1},
    {"op": "humanEntry", "handoffId": HANDOFF_ID, "attempt": 1,
     "threads": [{"agent": "ops", "threadId": "t-1"}], "entry": ENTRY},
]  # fmt: skip


@pytest.mark.parametrize("wire", WIRE, ids=[w["op"] for w in WIRE])
def test_every_kind_round_trips_to_the_same_json(wire: dict[str, Any]) -> None:
    message = parse_work(wire)
    assert message.wire() == wire
    assert json.loads(json.dumps(message.wire())) == wire
    assert message.next_attempt().wire() == {**wire, "attempt": wire["attempt"] + 1}
    assert message.poisoned("why") == {**wire, "reason": "why"}


def test_the_union_covers_every_kind() -> None:
    assert sorted(WORK_KINDS) == sorted(w["op"] for w in WIRE)


def test_a_replayed_poison_copy_is_work_again() -> None:
    assert parse_work({**WIRE[0], "reason": "gave up"}) == Deliver(handoff_id=HANDOFF_ID)


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        ([], "not a JSON object"),
        ({"op": "teleport", "handoffId": HANDOFF_ID}, "unknown op 'teleport'"),
        ({"handoffId": HANDOFF_ID}, "unknown op 'None'"),
        ({"op": "handback", "handoffId": HANDOFF_ID}, "malformed handback message: seq: Field required"),
        ({"op": "deliver", "handoffId": "../etc"}, "malformed deliver message: handoffId"),
        ({"op": "deliver", "handoffId": HANDOFF_ID, "attempt": "many"}, "malformed deliver message: attempt"),
    ],
)
def test_what_is_not_work_is_refused_with_the_reason(data: Any, reason: str) -> None:
    with pytest.raises(MalformedWork) as refused:
        parse_work(data)
    assert reason in refused.value.reason


class _Queue:
    def __init__(self) -> None:
        self.sent: list[dict[str, Any]] = []
        self.poisoned: list[dict[str, Any]] = []

    def send(self, message: dict[str, Any], delay_seconds: float = 0) -> None:
        self.sent.append(message)

    def send_poison(self, message: dict[str, Any]) -> None:
        self.poisoned.append(message)


class _Store:
    """Knows one handoff, keeps its audit."""

    def __init__(self) -> None:
        now = datetime.now(UTC)
        request = HandoffRequest.model_validate(handoff_body(None))
        stored = StoredRequest(id=HANDOFF_ID, request=request, source_agent="ops", target_agent="checkout",
                               root_id=HANDOFF_ID, body_hash="h", created_at=now, caller="local")  # fmt: skip
        self.record = HandoffRecord(stored=stored, state=HandoffState(updated_at=now))
        self.audit: list[tuple[str, str, str, dict[str, Any]]] = []

    def get(self, handoff_id: str, *, fresh: bool = True) -> HandoffRecord | None:
        return self.record if handoff_id == HANDOFF_ID else None

    def append_audit(self, handoff_id: str, type: str, actor: str, details: dict[str, Any]) -> AuditEvent:
        self.audit.append((handoff_id, type, actor, details))
        return AuditEvent(seq=len(self.audit), type=type, at=datetime.now(UTC), actor=actor, details=details)


RID = (
    "/subscriptions/00000000-0000-0000-0000-000000000000/resourceGroups/rg/providers/Microsoft.App/agents/{}"
)
REGISTRY = {"agents": [{"name": name, "resourceId": RID.format(name)} for name in ("ops", "checkout")]}


@pytest.fixture
def broker() -> tuple[Any, _Store, _Queue]:
    store, queue = _Store(), _Queue()
    handoffs = build_handoffs(
        settings=Settings.from_env({}), registry=Registry.from_data(REGISTRY), store=store,  # type: ignore[arg-type]
        queue=queue, agents=None,  # type: ignore[arg-type]
    )  # fmt: skip
    return handoffs, store, queue


def test_the_worker_parks_malformed_work_with_the_reason_and_audits_it(broker: Any) -> None:
    handoffs, store, queue = broker
    message = {"op": "handback", "handoffId": HANDOFF_ID, "attempt": 1}
    handoffs.worker.process(message)
    assert queue.poisoned == [{**message, "reason": "malformed handback message: seq: Field required"}]
    assert store.audit == [
        (HANDOFF_ID, EventType.WORK_REJECTED, Actor.BROKER,
         {"op": "handback", "reason": "malformed handback message: seq: Field required"}),
    ]  # fmt: skip
    assert queue.sent == []


def test_the_worker_parks_an_unknown_op_and_work_nobody_registered(broker: Any) -> None:
    handoffs, store, queue = broker
    handoffs.worker.process({"op": "teleport", "handoffId": "not-an-id"})
    handoffs.worker.process(AlertNote(handoff_id=HANDOFF_ID).wire())
    assert [m["reason"] for m in queue.poisoned] == [
        "unknown op 'teleport'",
        "no handler for op 'alertNote' in this worker",
    ]
    # The first names no handoff; the second's handoff notes it.
    assert [(e[0], e[1]) for e in store.audit] == [(HANDOFF_ID, "workRejected")]


def test_a_registered_handler_gets_the_typed_message(broker: Any) -> None:
    handoffs, _store, queue = broker
    seen: list[tuple[AlertNote, int]] = []
    handoffs.worker.register(AlertNote, lambda message, count: seen.append((message, count)))
    handoffs.worker.process({"op": "alertNote", "handoffId": HANDOFF_ID, "attempt": 2}, 3)
    assert seen == [(AlertNote(handoff_id=HANDOFF_ID, attempt=2), 3)]
    assert queue.poisoned == []


def test_a_handoff_step_of_a_handoff_that_does_not_exist_is_dropped_unrun(broker: Any) -> None:
    handoffs, store, queue = broker
    handoffs.worker.process(HandBack(handoff_id="5a0e9a4e-1111-4111-8111-00000000000f", seq=1).wire())
    assert (queue.sent, queue.poisoned, store.audit) == ([], [], [])
