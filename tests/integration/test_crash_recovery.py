"""The pieces of crash recovery on the real storage adapters (Azurite): the per-handoff lease (renewed by
the worker's own writes, fenced so a worker that lost it stops), the sweeper's idea of "idle" (no write,
no retry due, no live lease; pending cross-links included) and the operator's retry of failed steps."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from handoff.adapters.azure_storage.clients import StorageClients
from handoff.adapters.azure_storage.handoffs import TableHandoffStore
from handoff.domain.auth import Caller
from handoff.domain.errors import Forbidden, NotFound
from handoff.domain.models import HandoffRequest
from handoff.domain.records import HandbackDelivery, HandoffState, StoredRequest, has_pending_work
from handoff.domain.registry import Registry
from handoff.services.handoffs import Handoffs, build_handoffs
from handoff.services.policy import GIVE_UP_AFTER, MAX_SWEEPS
from handoff.services.state_writes import acquire_lease, holding, lease_duration, touch
from handoff.settings import Settings
from tests.e2e.helpers import handoff_body

OPERATOR = Caller("operatorKey")


class _Queue:
    def __init__(self) -> None:
        self.sent: list[dict[str, Any]] = []
        self.poisoned: list[dict[str, Any]] = []

    def send(self, message: dict[str, Any], delay_seconds: float = 0) -> None:
        self.sent.append(message)

    def send_poison(self, message: dict[str, Any]) -> None:
        self.poisoned.append(message)


class _Mine(TableHandoffStore):
    """The real Table adapter; the sweeper sees only this test's handoffs (the Azurite is shared)."""

    def __init__(self, clients: StorageClients) -> None:
        super().__init__(clients)
        self.mine: set[str] = set()

    def stale_pending(self, older_than: datetime) -> list[str]:
        return [found for found in super().stale_pending(older_than) if found in self.mine]


class _Clock:
    def __init__(self) -> None:
        self.now = datetime.now(UTC)

    def __call__(self) -> datetime:
        return self.now


class _Agents:
    """A target agent: ``find_thread`` can stall (as a slow listing does) while the test acts."""

    def __init__(self) -> None:
        self.created: list[str] = []
        self.on_find: Any = None

    def find_thread(self, agent: Any, needle: str, since: datetime | None = None) -> str | None:
        if self.on_find is not None:
            self.on_find()
        return None

    def create_thread(self, agent: Any, text: str) -> str:
        self.created.append(text)
        return f"thread-{len(self.created)}"

    def __getattr__(self, name: str) -> Any:
        raise AssertionError(f"unexpected agent call {name}")


@pytest.fixture
def world(azurite, registry_config):
    settings = Settings.from_env({"HANDOFF_STORAGE": azurite.connection_string})
    clients = StorageClients(settings)
    clients.ensure()
    store = _Mine(clients)
    clock = _Clock()

    def service(agents: Any = None, queue: _Queue | None = None) -> Handoffs:
        return build_handoffs(
            settings=settings, registry=Registry.from_data(registry_config), store=store,
            queue=queue or _Queue(), agents=agents or _Agents(), clock=clock,
        )  # fmt: skip

    return service, store, clock


def _store(store: _Mine, state: HandoffState) -> str:
    handoff_id = str(uuid.uuid4())
    request = HandoffRequest.model_validate(handoff_body(None))
    stored = StoredRequest(
        id=handoff_id, request=request, source_agent="ops", target_agent="checkout", root_id=handoff_id,
        body_hash="h", created_at=state.updated_at, caller="local",
    )  # fmt: skip
    assert store.create(stored, state)
    store.mine.add(handoff_id)
    return handoff_id


def _state(store: TableHandoffStore, handoff_id: str) -> HandoffState:
    return store.update_state(handoff_id, lambda state: None)


def test_a_worker_that_lost_its_lease_stops_before_calling_the_agent(world):
    """Worker A stalls past its lease; B takes the handoff over. A's next write finds out, is not made,
    and A opens no thread (B does its own look-then-create); A leaves B's lease alone."""
    service, store, clock = world
    handoff_id = _store(store, HandoffState(updated_at=clock.now, create_attempted=True))
    agents_a, agents_b = _Agents(), _Agents()
    worker_a, worker_b = service(agents_a), service(agents_b)
    taken: list[str] = []

    def stall() -> None:
        clock.now += lease_duration(worker_a.context.settings) + timedelta(seconds=1)
        taken.append(acquire_lease(worker_b.context, handoff_id))

    agents_a.on_find = stall
    worker_a.worker.process({"op": "deliver", "handoffId": handoff_id, "attempt": 1})

    assert agents_a.created == []
    state = _state(store, handoff_id)
    assert state.lease_owner == taken[0] and state.attempts == 0 and state.status == "accepted"


def test_each_state_write_of_the_worker_renews_its_lease(world):
    service, store, clock = world
    handoff_id = _store(store, HandoffState(updated_at=clock.now))
    worker = service()
    token = acquire_lease(worker.context, handoff_id)
    taken = _state(store, handoff_id).lease_until
    clock.now += timedelta(seconds=45)  # working: a slow call
    with holding(handoff_id, token):
        touch(worker.context, handoff_id, lambda s: setattr(s, "last_error", "still working"))
    state = _state(store, handoff_id)
    assert (
        taken is not None and state.lease_until == clock.now + lease_duration(worker.context.settings) > taken
    )
    assert state.lease_owner == token
    # Writes of anyone else (an HTTP request, the sweeper) neither check nor renew it.
    clock.now += timedelta(seconds=5)
    touch(worker.context, handoff_id, lambda s: setattr(s, "last_error", "someone else"))
    assert _state(store, handoff_id).lease_until == state.lease_until


# Handoffs are written as of now and the sweeping clock moves on, so that the test broker sharing this
# Azurite (whose sweeper runs on the real clock) does not find them idle meanwhile.


def test_the_sweeper_covers_pending_cross_links(world):
    service, store, clock = world
    delivered = HandoffState(
        updated_at=clock.now, status="delivered", target_thread_id="t-b", crosslink_attempted=True
    )
    assert has_pending_work(delivered)
    handoff_id = _store(store, delivered)
    done = _store(store, delivered.model_copy(update={"crosslink": "posted"}))
    assert not has_pending_work(_state(store, done))
    queue = _Queue()
    sweeper = service(queue=queue)
    clock.now += timedelta(seconds=sweeper.context.settings.sweep_after_seconds + 1)
    assert sweeper.sweeper.sweep().requeued == 1
    assert queue.sent == [{"op": "deliver", "handoffId": handoff_id, "attempt": 1}]


def test_the_sweeper_leaves_a_scheduled_retry_and_a_live_lease_alone(world):
    service, store, clock = world
    t0 = clock.now
    queue = _Queue()
    sweeper = service(queue=queue)
    after = timedelta(seconds=sweeper.context.settings.sweep_after_seconds)
    # A 429 asked for ten minutes: the worker scheduled its retry then.
    waiting = _store(store, HandoffState(updated_at=t0, retry_at=t0 + timedelta(minutes=10)))
    # A worker holds the lease (it is in a slow call, or it died and the lease has yet to run out).
    busy = _store(store, HandoffState(updated_at=t0, lease_until=t0 + timedelta(minutes=5)))
    clock.now = t0 + after + timedelta(seconds=1)
    assert sweeper.sweeper.sweep().requeued == 0
    clock.now = t0 + timedelta(minutes=5, seconds=1)
    assert sweeper.sweeper.sweep().requeued == 1  # the lease ran out: the worker died
    assert [m["handoffId"] for m in queue.sent] == [busy]
    clock.now = t0 + timedelta(minutes=10) + after - timedelta(seconds=1)
    sweeper.sweeper.sweep()
    assert waiting not in [m["handoffId"] for m in queue.sent]  # due, but not yet idle for `after`
    clock.now = t0 + timedelta(minutes=10) + after + timedelta(seconds=1)
    sweeper.sweeper.sweep()
    assert waiting in [m["handoffId"] for m in queue.sent]  # the retry was due and did not come


def test_give_up_still_applies_but_not_to_a_handoff_waiting_in_a_backlog(world):
    service, store, clock = world
    state = HandoffState(
        updated_at=clock.now, status="delivered", target_thread_id="t-b", crosslink_attempted=True
    )
    waiting, stuck = _store(store, state), _store(store, state)
    store.mine = {waiting}
    queue = _Queue()
    sweeper = service(queue=queue)
    # Swept every minute for ten minutes: more than MAX_SWEEPS re-queues, but no half hour of nothing.
    for _ in range(10):
        clock.now += timedelta(seconds=sweeper.context.settings.sweep_after_seconds + 1)
        assert sweeper.sweeper.sweep().requeued == 1
    assert _state(store, waiting).crosslink == "pending"
    # Re-queued MAX_SWEEPS times with no progress for GIVE_UP_AFTER: given up, audited, replayable.
    store.mine = {stuck}
    clock.now = state.updated_at
    step = GIVE_UP_AFTER / MAX_SWEEPS
    for _ in range(MAX_SWEEPS):
        clock.now += step
        assert sweeper.sweeper.sweep().requeued == 1
    clock.now += step
    assert sweeper.sweeper.sweep().gave_up == 1
    failed = _state(store, stuck)
    assert (failed.status, failed.crosslink) == ("delivered", "failed")
    assert [e.type for e in store.list_audit(stuck)][-1] == "crossLinkFailed"


def test_the_operator_retry_reopens_failed_steps_once(world):
    service, store, clock = world
    failed = HandoffState(updated_at=clock.now, status="failed", create_attempted=True, last_error="400")
    handoff_id = _store(store, failed)
    queue = _Queue()
    broker = service(queue=queue)
    view, steps = broker.sweeper.retry(handoff_id, OPERATOR)
    assert [s["step"] for s in steps] == ["delivery"] and view.status == "accepted"
    assert queue.sent == [{"op": "deliver", "handoffId": handoff_id, "attempt": 1}]
    _, again = broker.sweeper.retry(handoff_id, OPERATOR)
    assert again == [] and len(queue.sent) == 1
    state = _state(store, handoff_id)
    assert state.create_attempted  # the retried delivery looks for an earlier thread first
    assert [e.type for e in store.list_audit(handoff_id)] == ["retryRequested"]

    # A delivered handoff whose cross-link and second hand-back failed: both come back.
    linked = HandoffState(
        updated_at=clock.now, status="handedBack", target_thread_id="t-b", crosslink="failed",
        handbacks={1: HandbackDelivery(status="posted"), 2: HandbackDelivery(status="failed")},
    )  # fmt: skip
    other = _store(store, linked)
    _, steps = broker.sweeper.retry(other, OPERATOR)
    assert [(s["step"], s.get("seq")) for s in steps] == [("crossLink", None), ("handBack", 2)]
    state = _state(store, other)
    assert (state.crosslink, state.handbacks[2].status, state.handbacks[1].status) == (
        "pending",
        "pending",
        "posted",
    )


def test_only_operators_may_retry(world):
    service, store, clock = world
    handoff_id = _store(store, HandoffState(updated_at=clock.now, status="failed"))
    broker = service()
    with pytest.raises(Forbidden):
        broker.sweeper.retry(handoff_id, Caller("agentKey", name="ops"))  # an agent of the handoff
    with pytest.raises(NotFound):
        broker.sweeper.retry(
            handoff_id, Caller("agentKey", name="payments")
        )  # not of its chain: not even there
    assert _state(store, handoff_id).status == "failed"
