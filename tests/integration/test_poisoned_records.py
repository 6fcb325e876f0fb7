"""A record that cannot be read, or work that never progresses, ends ``failed`` with its reason and never
stops the sweep of the others (real storage adapters against Azurite).

The record that cannot be read is one stored before the broker limited nesting depth: its request holds
data nested 250 deep, which the storage layer's JSON reader refuses. Such a record can no longer be
accepted (tests/e2e/test_poison_proof_intake.py), so it is written here straight through the adapter.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from pydantic import ValidationError

from handoff.adapters.azure_storage.clients import StorageClients
from handoff.adapters.azure_storage.handoffs import TableHandoffStore
from handoff.adapters.azure_storage.shared_memory import TableWriteState
from handoff.adapters.vendor_writers import VendorWriters
from handoff.adapters.vendors import WriterContext
from handoff.domain.models import HandbackRequest, HandoffRequest
from handoff.domain.records import HandbackDelivery, HandoffState, StoredHandback, StoredRequest
from handoff.domain.registry import Registry
from handoff.domain.shared_memory.writes import write_key
from handoff.services.handoffs import build_handoffs
from handoff.services.policy import GIVE_UP_AFTER, MAX_SWEEPS
from handoff.services.shared_memory.worker import SharedMemoryService
from handoff.settings import HANDOFF_TABLE, Settings
from tests.e2e.helpers import handback_body, handoff_body

LEGACY_DEPTH = 250


class _NoAgents:
    """None of these paths may call an agent; any call is a test failure."""

    def __getattr__(self, name: str) -> Any:
        raise AssertionError(f"unexpected agent call {name}")


class _RecordingQueue:
    """The delivery queue port, keeping what is sent (the shared Azurite's queue feeds the test broker)."""

    def __init__(self) -> None:
        self.sent: list[dict[str, Any]] = []
        self.poisoned: list[dict[str, Any]] = []

    def send(self, message: dict[str, Any], delay_seconds: float = 0) -> None:
        self.sent.append(message)

    def send_poison(self, message: dict[str, Any]) -> None:
        self.poisoned.append(message)


class _OnlyTheseStore(TableHandoffStore):
    """The real Table adapter; the sweeper sees only this test's handoffs (the Azurite is shared)."""

    def __init__(self, clients: StorageClients) -> None:
        super().__init__(clients)
        self.mine: set[str] = set()
        # The records were written by an earlier release, in another process (whose copies this one
        # does not have).
        self.writer = TableHandoffStore(clients)

    def stale_pending(self, older_than: datetime) -> list[str]:
        return [handoff_id for handoff_id in super().stale_pending(older_than) if handoff_id in self.mine]


class _Clock:
    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture
def world(azurite, registry_config):
    settings = Settings.from_env({"HANDOFF_STORAGE": azurite.connection_string})
    clients = StorageClients(settings)
    clients.ensure()
    store = _OnlyTheseStore(clients)
    queue = _RecordingQueue()
    clock = _Clock(datetime.now(UTC))
    service = build_handoffs(
        settings=settings,
        registry=Registry.from_data(registry_config),
        store=store,
        queue=queue,
        agents=_NoAgents(),  # type: ignore[arg-type]
        clock=clock,
    )
    return service, store, queue, clock, clients


def _nested(depth: int) -> dict[str, Any]:
    value: dict[str, Any] = {"leaf": True}
    for _ in range(depth - 1):
        value = {"a": value}
    return value


def _store(store: _OnlyTheseStore, *, deep: bool = False, state: HandoffState | None = None) -> str:
    body = handoff_body(None)
    if deep:
        body["context"]["evidence"].append({"kind": "data", "title": "legacy", "data": _nested(LEGACY_DEPTH)})
    request = HandoffRequest.model_validate(body)
    handoff_id = str(uuid.uuid4())
    at = datetime.now(UTC) - timedelta(hours=1)
    stored = StoredRequest(id=handoff_id, request=request, source_agent="ops", target_agent="checkout",
                           root_id=handoff_id, body_hash="h", created_at=at, caller="local")  # fmt: skip
    assert store.writer.create(stored, state or HandoffState(updated_at=at))
    store.mine.add(handoff_id)
    return handoff_id


def _state(store: TableHandoffStore, handoff_id: str) -> HandoffState:
    return store.update_state(handoff_id, lambda state: None)


def test_the_legacy_record_cannot_be_read(world):
    _, store, *_ = world
    handoff_id = _store(store, deep=True)
    with pytest.raises(ValidationError):
        store.get(handoff_id)


def test_last_dequeue_marks_the_handoff_failed_even_when_its_record_cannot_be_read(world):
    service, store, queue, *_ = world
    handoff_id = _store(store, deep=True)
    message = {"op": "deliver", "handoffId": handoff_id, "attempt": 1}
    # Before the last dequeue the host retries: the error propagates and nothing is marked.
    with pytest.raises(ValidationError):
        service.worker.process(message, dequeue_count=1)
    assert _state(store, handoff_id).status == "accepted"
    # On the last one the step is marked failed first, with the reason, then the host poisons it.
    with pytest.raises(ValidationError):
        service.worker.process(message, dequeue_count=service.context.settings.max_dequeue_count)
    state = _state(store, handoff_id)
    assert state.status == "failed"
    assert state.last_error == "unexpected error: ValidationError"
    events = store.list_audit(handoff_id)
    assert [(e.type, e.details["how"]) for e in events] == [("deliveryFailed", "poisoned")]
    assert queue.sent == []


def test_last_dequeue_marks_a_hand_back_failed_when_its_record_cannot_be_read(world):
    service, store, *_ = world
    now = datetime.now(UTC) - timedelta(hours=1)
    handoff_id = _store(store, deep=True, state=HandoffState(updated_at=now, status="delivered"))
    store.add_handback(
        handoff_id,
        lambda seq: StoredHandback(seq=seq, received_at=now, request=HandbackRequest.model_validate(
            handback_body()), agent="checkout", caller="local"),
    )  # fmt: skip
    store.update_state(handoff_id, lambda state: state.handbacks.setdefault(1, HandbackDelivery()))
    message = {"op": "handback", "handoffId": handoff_id, "seq": 1, "attempt": 1}
    with pytest.raises(ValidationError):
        service.worker.process(message, dequeue_count=service.context.settings.max_dequeue_count)
    state = _state(store, handoff_id)
    assert state.status == "delivered"
    assert state.handbacks[1].status == "failed"
    assert state.handbacks[1].error == "unexpected error: ValidationError"
    assert [e.type for e in store.list_audit(handoff_id)] == ["handBackFailed"]


def test_shared_memory_last_dequeue_marks_the_write_failed_when_the_record_cannot_be_read(
    world, shared_memory_registry
):
    service, store, queue, _, clients = world
    handoff_id = _store(store, deep=True)
    state = TableWriteState(clients)
    memory = SharedMemoryService(
        settings=service.context.settings,
        registry=Registry.from_data(shared_memory_registry),
        store=store,
        queue=queue,
        state=state,
        writers=VendorWriters(
            WriterContext(
                http=httpx.Client(),
                settings=service.context.settings,
                state=state,
                clock=service.context.clock,
            )
        ),
    )
    message = {"handoffId": handoff_id, "point": "handedBack", "seq": 1, "backend": "jira", "attempt": 1}
    with pytest.raises(ValidationError):
        memory.process(message, dequeue_count=1)
    assert state.get_write(handoff_id, write_key("handedBack", 1, "jira")) is None
    with pytest.raises(ValidationError):
        memory.process(message, dequeue_count=service.context.settings.max_dequeue_count)
    write = state.get_write(handoff_id, write_key("handedBack", 1, "jira"))
    assert write is not None
    assert (write["Status"], write["Error"]) == ("failed", "unexpected error: ValidationError")
    assert [e.type for e in store.list_audit(handoff_id)] == ["sharedMemoryFailed"]


def test_the_sweeper_isolates_a_record_that_raises_and_carries_on(world):
    service, store, queue, clock, clients = world
    stranded = _store(store)
    legacy = _store(store, deep=True)
    broken = _store(store)
    # A state row that cannot be read at all (say, written by a broken release).
    table = clients.table(HANDOFF_TABLE)
    entity = table.get_entity(broken, "state")
    entity["Doc0"] = '{"status": "accepted", "updatedAt": '
    table.update_entity(entity)
    clock.now = datetime.now(UTC) + timedelta(seconds=service.context.settings.sweep_after_seconds)

    report = service.sweeper.sweep()

    assert report.errors == 1
    assert report.requeued == 2
    assert sorted(m["handoffId"] for m in queue.sent) == sorted([stranded, legacy])
    assert all(m["op"] == "deliver" for m in queue.sent)
    # The record whose request cannot be read is re-queued from its state alone; the worker then
    # marks it failed on the message's last dequeue (test above).
    assert [e.type for e in store.list_audit(legacy)] == ["redeliveryScheduled"]
    assert store.list_audit(broken) == []


def test_the_sweeper_gives_up_on_work_that_never_progresses(world):
    service, store, queue, clock, _ = world
    handoff_id = _store(store)
    # Sweeps far enough apart that the sixth comes after GIVE_UP_AFTER of no progress.
    step = max(
        timedelta(seconds=service.context.settings.sweep_after_seconds + 1), GIVE_UP_AFTER / MAX_SWEEPS
    )
    clock.now = datetime.now(UTC)
    for sweep in range(1, MAX_SWEEPS + 1):
        clock.now += step
        assert service.sweeper.sweep().requeued == 1, f"sweep {sweep}"
        # Swept again within sweep_after_seconds: the message just sent is given time.
        clock.now += timedelta(seconds=1)
        assert service.sweeper.sweep().requeued == 0
    assert len(queue.sent) == MAX_SWEEPS
    assert _state(store, handoff_id).status == "accepted"

    clock.now += step
    report = service.sweeper.sweep()

    assert (report.requeued, report.gave_up) == (0, 1)
    state = _state(store, handoff_id)
    reason = f"no progress after {MAX_SWEEPS} re-queues by the sweeper"
    assert (state.status, state.last_error) == ("failed", reason)
    assert queue.poisoned == [{"op": "deliver", "handoffId": handoff_id, "attempt": 1, "reason": reason}]
    types = [e.type for e in store.list_audit(handoff_id)]
    assert types == ["redeliveryScheduled"] * MAX_SWEEPS + ["deliveryFailed"]
    # Nothing is pending any more: later sweeps leave it alone.
    clock.now += step
    assert service.sweeper.sweep() == type(report)()


def test_progress_between_sweeps_restarts_the_count(world):
    service, store, _, clock, _ = world
    handoff_id = _store(store)
    step = timedelta(seconds=service.context.settings.sweep_after_seconds + 1)
    clock.now = datetime.now(UTC)
    for _ in range(MAX_SWEEPS):
        clock.now += step
        assert service.sweeper.sweep().requeued == 1
    # The worker touched the handoff (say, a retry it scheduled), and then went quiet again.
    touched = clock.now

    def progress(state: HandoffState) -> None:
        state.updated_at = touched
        state.last_error = "agent answered 503"

    store.update_state(handoff_id, progress)
    clock.now += step
    assert service.sweeper.sweep().requeued == 1
    state = _state(store, handoff_id)
    assert (state.status, state.sweeps) == ("accepted", 1)
