"""The in-memory ports keep the contracts of the real adapters the use-case tests rely on."""

from __future__ import annotations

import uuid
from datetime import timedelta
from typing import Any

import pytest

from handoff.domain.audit import verify_chain
from handoff.domain.chains import ChainMember, PairFull
from handoff.domain.errors import PayloadTooLarge
from handoff.domain.history import HistoryQuery
from handoff.domain.models import HandbackRequest, HandoffRequest
from handoff.domain.records import (
    AgentCallError,
    HandbackDelivery,
    HandoffRecord,
    HandoffState,
    LinkRecord,
    NewEvent,
    StoredHandback,
    StoredRequest,
)
from handoff.ports import StateChanged, StorageUnavailable
from tests.unit.conftest import SITE, World, handback_body, handoff_body
from tests.unit.memory.clock import START, Clock
from tests.unit.memory.queue import MemoryDeliveryQueue
from tests.unit.memory.store import MAX_OCC_RETRIES, EntityNotFound, MemoryHandoffStore


def _stored(handoff_id: str | None = None, **extra: Any) -> StoredRequest:
    handoff_id = handoff_id or str(uuid.uuid4())
    request = HandoffRequest.model_validate(handoff_body("ops-thread-1"))
    return StoredRequest(
        id=handoff_id, request=request, source_agent="ops", target_agent="checkout", root_id=handoff_id,
        body_hash="h", created_at=START, caller="local", **extra,
    )  # fmt: skip


def _handback(seq: int) -> StoredHandback:
    request = HandbackRequest.model_validate(handback_body())
    return StoredHandback(seq=seq, received_at=START, request=request, agent="checkout", caller="local")


@pytest.fixture
def store() -> MemoryHandoffStore:
    return MemoryHandoffStore(Clock())


# ---------------------------------------------------------------- handoff store


def test_create_is_insert_if_absent(store: MemoryHandoffStore) -> None:
    stored = _stored()
    assert store.create(stored, HandoffState(updated_at=START)) is True
    assert store.create(stored, HandoffState(updated_at=START, status="failed")) is False
    record = store.get(stored.id)
    assert record is not None and record.state.status == "accepted"


def test_get_returns_copies(store: MemoryHandoffStore) -> None:
    stored = _stored()
    store.create(stored, HandoffState(updated_at=START))
    first = store.get(stored.id)
    assert first is not None
    first.state.status = "failed"
    again = store.get(stored.id)
    assert again is not None and again.state.status == "accepted"


def test_an_entity_too_large_is_refused_before_anything_is_stored(store: MemoryHandoffStore) -> None:
    big = _stored()
    big = big.model_copy(update={"caller": "x" * 600_000})
    with pytest.raises(PayloadTooLarge):
        store.create(big, HandoffState(updated_at=START))
    assert store.get(big.id) is None


def test_update_state_writes_what_the_mutation_leaves(store: MemoryHandoffStore) -> None:
    stored = _stored()
    store.create(stored, HandoffState(updated_at=START))
    returned = store.update_state(stored.id, lambda s: setattr(s, "attempts", 3))
    assert returned.attempts == 3 and store.state(stored.id).attempts == 3


def test_a_mutation_that_raises_writes_nothing(store: MemoryHandoffStore) -> None:
    stored = _stored()
    store.create(stored, HandoffState(updated_at=START))

    def half_then_raise(state: HandoffState) -> None:
        state.attempts = 9
        raise KeyError("stop")

    with pytest.raises(KeyError):
        store.update_state(stored.id, half_then_raise)
    assert store.state(stored.id).attempts == 0


def test_a_concurrent_write_makes_the_mutation_run_again_on_the_new_state(store: MemoryHandoffStore) -> None:
    stored = _stored()
    store.create(stored, HandoffState(updated_at=START))
    store.interleave(stored.id, lambda s: setattr(s, "last_error", "theirs"))
    runs: list[str | None] = []

    def mine(state: HandoffState) -> None:
        runs.append(state.last_error)
        state.attempts += 1

    final = store.update_state(stored.id, mine)
    assert runs == [None, "theirs"]
    assert (final.attempts, final.last_error) == (1, "theirs")


def test_a_state_that_keeps_changing_is_given_up_as_unavailable(store: MemoryHandoffStore) -> None:
    stored = _stored()
    store.create(stored, HandoffState(updated_at=START))
    store.interleave(stored.id, lambda s: None, times=MAX_OCC_RETRIES)
    with pytest.raises(StorageUnavailable):
        store.update_state(stored.id, lambda s: None)


def test_update_state_of_a_missing_handoff_is_not_found(store: MemoryHandoffStore) -> None:
    with pytest.raises(EntityNotFound):
        store.update_state(str(uuid.uuid4()), lambda s: None)


def test_hand_backs_are_numbered_from_one_and_a_claim_is_held_once(store: MemoryHandoffStore) -> None:
    stored = _stored()
    store.create(stored, HandoffState(updated_at=START))
    first, new = store.add_handback(stored.id, _handback, claim="c1")
    assert (first.seq, new) == (1, True)
    again, new = store.add_handback(stored.id, _handback, claim="c1")
    assert (again.seq, new) == (1, False)
    second, new = store.add_handback(stored.id, _handback)
    assert (second.seq, new) == (2, True)
    record = store.get(stored.id)
    assert record is not None and [hb.seq for hb in record.handbacks] == [1, 2]


def _created(store: MemoryHandoffStore) -> str:
    stored = _stored()
    store.create(stored, HandoffState(updated_at=START))
    return stored.id


def test_audit_is_a_verifiable_hash_chain_and_tampering_shows(store: MemoryHandoffStore) -> None:
    h1 = _created(store)
    for kind in ("accepted", "delivered", "crossLinked"):
        store.append_audit(h1, kind, "broker", {"step": kind})
    events = store.list_audit(h1)
    assert [e.seq for e in events] == [1, 2, 3]
    assert events[1].prev_hash == events[0].hash
    assert verify_chain(h1, events).valid
    store.edit_event(h1, 2, details={"step": "forged"})
    broken = verify_chain(h1, store.list_audit(h1))
    assert (broken.valid, broken.first_bad_seq) == (False, 2)


def test_audit_details_are_redacted_and_capped(store: MemoryHandoffStore) -> None:
    h1 = _created(store)
    event = store.append_audit(h1, "note", "broker", {"password": "hunter2-very-secret", "n": 1})
    assert "hunter2" not in str(event.details) and event.details["n"] == 1
    big = store.append_audit(h1, "note", "broker", {"text": "y" * 20_000})
    assert big.details["truncated"] is True and len(big.details["preview"]) == 1000


def test_list_audit_pages_after_a_sequence_number(store: MemoryHandoffStore) -> None:
    h1 = _created(store)
    for index in range(5):
        store.append_audit(h1, f"e{index}", "broker", {})
    assert [e.seq for e in store.list_audit(h1, after=2, limit=2)] == [3, 4]


def test_the_audit_of_a_handoff_that_does_not_exist_cannot_be_appended_to(store: MemoryHandoffStore) -> None:
    # The audit's tail lives in the state row: no state, no audit.
    with pytest.raises(EntityNotFound):
        store.append_audit(str(uuid.uuid4()), "note", "broker", {})


def test_events_are_written_with_the_state_or_not_at_all(store: MemoryHandoffStore) -> None:
    stored = _stored()
    accepted = NewEvent("accepted", "local", {"n": 1})
    assert store.create(stored, HandoffState(updated_at=START), [accepted])
    delivered = NewEvent("delivered", "broker", {"threadId": "t"})
    store.update_state(stored.id, lambda s: setattr(s, "status", "delivered"), [delivered])
    assert store.event_types(stored.id) == ["accepted", "delivered"]
    assert verify_chain(stored.id, store.list_audit(stored.id)).valid

    def refuse(state: HandoffState) -> None:
        raise KeyError("stop")

    with pytest.raises(KeyError):
        store.update_state(stored.id, refuse, [NewEvent("never", "broker", {})])
    store.faults.fail("update_state")
    with pytest.raises(StorageUnavailable):
        store.update_state(stored.id, lambda s: None, [NewEvent("never", "broker", {})])
    assert store.event_types(stored.id) == ["accepted", "delivered"]


def test_events_can_be_made_from_the_state_the_mutation_left(store: MemoryHandoffStore) -> None:
    handoff_id = _created(store)
    store.update_state(
        handoff_id,
        lambda s: setattr(s, "attempts", s.attempts + 1),
        lambda s: [NewEvent("deliveryAttempt", "broker", {"attempt": s.attempts})],
    )
    assert store.list_audit(handoff_id)[0].details == {"attempt": 1}


def test_a_write_on_a_version_is_made_only_while_it_is_current(store: MemoryHandoffStore) -> None:
    handoff_id = _created(store)
    record = store.get(handoff_id)
    assert record is not None and record.version is not None
    store.append_audit(handoff_id, "note", "broker", {})  # leaves the state, and so its version, as it is
    store.update_state(handoff_id, lambda s: setattr(s, "attempts", 1), version=record.version)
    with pytest.raises(StateChanged):  # that write changed the state
        store.update_state(handoff_id, lambda s: setattr(s, "attempts", 9), version=record.version)
    current = store.get(handoff_id)
    assert current is not None and current.version != record.version and current.state.attempts == 1
    store.update_state(handoff_id, lambda s: setattr(s, "attempts", 9), version=current.version)
    assert store.state(handoff_id).attempts == 9


def test_a_write_on_a_version_that_another_writer_overtakes_is_not_made(store: MemoryHandoffStore) -> None:
    handoff_id = _created(store)
    record = store.get(handoff_id)
    assert record is not None
    store.interleave(handoff_id, lambda s: setattr(s, "last_error", "theirs"))
    with pytest.raises(StateChanged):
        store.update_state(handoff_id, lambda s: setattr(s, "attempts", 9), version=record.version)
    assert (store.state(handoff_id).attempts, store.state(handoff_id).last_error) == (0, "theirs")
    # A writer that leaves the state as it is (an audit event) only makes the write try again.
    fresh = store.get(handoff_id)
    assert fresh is not None
    store.interleave(handoff_id, lambda s: None)
    store.update_state(handoff_id, lambda s: setattr(s, "attempts", 9), version=fresh.version)
    assert store.state(handoff_id).attempts == 9


def test_a_hand_back_is_recorded_with_its_pending_delivery_and_its_events(store: MemoryHandoffStore) -> None:
    handoff_id = _created(store)
    later = START + timedelta(minutes=3)
    handback, new = store.add_handback(
        handoff_id,
        lambda seq: _handback(seq).model_copy(update={"received_at": later}),
        events=lambda hb: [NewEvent("handBackReceived", "checkout", {"seq": hb.seq})],
    )
    assert new and handback.seq == 1
    state = store.state(handoff_id)
    assert state.handbacks[1].status == "pending" and state.updated_at == later
    assert store.list_audit(handoff_id)[0].details == {"seq": 1}
    store.faults.fail("add_handback")
    with pytest.raises(StorageUnavailable):
        store.add_handback(handoff_id, _handback, events=lambda hb: [NewEvent("x", "y", {})])
    record = store.get(handoff_id)
    assert record is not None and len(record.handbacks) == 1 and list(record.state.handbacks) == [1]
    assert store.event_types(handoff_id) == ["handBackReceived"]


def test_a_root_handoff_starts_its_chain_in_the_same_write(store: MemoryHandoffStore) -> None:
    stored = _stored()
    member = ChainMember(
        handoff_id=stored.id, root_id=stored.id, source_agent="ops", target_agent="checkout", created_at=START
    )
    assert store.create(stored, HandoffState(updated_at=START), chain=member)
    assert store.chains.holders(stored.id, "ops", "checkout") == {1: stored.id}
    assert [m.handoff_id for m in store.chains.members(stored.id)] == [stored.id]
    assert not store.create(stored, HandoffState(updated_at=START), chain=member)
    with pytest.raises(ValueError, match="root"):
        store.create(_stored(), HandoffState(updated_at=START), chain=member)  # not its own root


def test_links_are_upserted_per_handoff_and_relation(store: MemoryHandoffStore) -> None:
    link = LinkRecord(
        agent="ops", thread_id="t1", relation="handedOffTo", peer_agent="checkout", peer_thread_id="t2",
        handoff_id="h1", created_at=START,
    )  # fmt: skip
    store.add_links([link])
    store.add_links([link])
    assert store.links_of("ops", "t1") == [link]
    assert store.links_of("checkout", "t2") == []


def test_stale_pending_lists_only_idle_handoffs_with_work_left(store: MemoryHandoffStore) -> None:
    idle, busy, done = _stored(), _stored(), _stored()
    store.create(idle, HandoffState(updated_at=START))
    store.create(busy, HandoffState(updated_at=START + timedelta(minutes=5)))
    store.create(done, HandoffState(updated_at=START, status="delivered", crosslink="posted"))
    assert store.stale_pending(START + timedelta(minutes=1)) == [idle.id]
    store.update_state(done.id, lambda s: s.handbacks.update({1: HandbackDelivery()}))
    assert done.id in store.stale_pending(START + timedelta(minutes=1))


def test_the_secret_is_created_once(store: MemoryHandoffStore) -> None:
    assert store.secret("idempotency") == store.secret("idempotency") != store.secret("other")
    assert len(store.secret("idempotency")) == 32


def test_an_outage_fails_every_operation_and_ends(store: MemoryHandoffStore) -> None:
    store.faults.outage()
    with pytest.raises(StorageUnavailable):
        store.ping()
    with pytest.raises(StorageUnavailable):
        store.create(_stored(), HandoffState(updated_at=START))
    store.faults.outage(False)
    store.ping()


def test_one_operation_can_fail_a_number_of_times(store: MemoryHandoffStore) -> None:
    h1 = _created(store)
    store.faults.fail("append_audit", times=2)
    for _ in range(2):
        with pytest.raises(StorageUnavailable):
            store.append_audit(h1, "x", "broker", {})
    store.append_audit(h1, "x", "broker", {})
    assert store.event_types(h1) == ["x"]


# ---------------------------------------------------------------- queue


def test_queue_keeps_whole_second_delays_and_json_copies() -> None:
    queue = MemoryDeliveryQueue(Clock())
    message: dict[str, Any] = {"op": "deliver", "handoffId": "h", "attempt": 1}
    queue.send(message, 2.9)
    message["attempt"] = 5
    assert queue.messages() == [{"op": "deliver", "handoffId": "h", "attempt": 1}]
    assert queue.pending[0].visibility_seconds == 2 and queue.delays() == [2.9]
    queue.send({"op": "x"}, 10**9)
    assert queue.pending[1].visibility_seconds == 604_800


def test_drain_moves_the_clock_to_delayed_messages_in_order() -> None:
    clock = Clock()
    queue = MemoryDeliveryQueue(clock)
    queue.send({"op": "late"}, 60)
    queue.send({"op": "now"})
    seen: list[tuple[str, Any]] = []
    queue.drain(lambda message, count: seen.append((message["op"], clock())))
    assert seen == [("now", START), ("late", START + timedelta(seconds=60))]


def test_drain_retries_a_failing_run_then_poisons_it_like_the_host() -> None:
    queue = MemoryDeliveryQueue(Clock(), max_dequeue_count=3)
    queue.send({"op": "deliver"})
    counts: list[int] = []

    def worker(message: dict[str, Any], count: int) -> None:
        counts.append(count)
        raise RuntimeError("boom")

    queue.drain(worker)
    assert counts == [1, 2, 3]
    assert queue.poison == [{"op": "deliver"}] and queue.pending == []


def test_drain_without_advance_runs_only_visible_messages() -> None:
    queue = MemoryDeliveryQueue(Clock())
    queue.send({"op": "later"}, 30)
    assert queue.drain(lambda m, c: None, advance=False) == []
    assert queue.messages() == [{"op": "later"}]


# ---------------------------------------------------------------- agents, peers, chains, history


def test_agent_faults_are_classified_like_http_answers(world: World) -> None:
    ops = world.registry.by_name("ops")
    world.agents.faults.fail_next(status=429, retry_after=7)
    with pytest.raises(AgentCallError) as busy:
        world.agents.create_thread(ops, "x")
    assert (busy.value.transient, busy.value.status, busy.value.retry_after) == (True, 429, 7)
    world.agents.faults.fail_next(status=403, retry_after=7)
    with pytest.raises(AgentCallError) as denied:
        world.agents.create_thread(ops, "x")
    assert (denied.value.transient, denied.value.retry_after) == (False, None)
    assert world.agents.threads_of("ops") == []


def test_a_lost_answer_takes_effect_before_it_fails(world: World) -> None:
    ops = world.registry.by_name("ops")
    world.agents.faults.fail_next(status=None, lost_answer=True, ops={"create_thread"})
    with pytest.raises(AgentCallError):
        world.agents.create_thread(ops, "hello")
    assert len(world.agents.threads_of("ops")) == 1


def test_an_unknown_thread_is_a_permanent_404(world: World) -> None:
    with pytest.raises(AgentCallError) as info:
        world.agents.get_thread(world.registry.by_name("ops"), "nope")
    assert (info.value.status, info.value.transient) == (404, False)


def test_a_peer_task_is_found_by_its_message_only_when_the_peer_lists_tasks(world: World) -> None:
    partner = world.registry.by_name("partner")
    task = world.remote.send_message(partner, message_id="m1", context_id="c1", text="t", data={})
    found = world.remote.find_task(partner, context_id="c1", message_id="m1")
    assert found is not None and found.task_id == task.task_id
    world.remote.lists_tasks = False
    assert world.remote.find_task(partner, context_id="c1", message_id="m1") is None


def test_chain_slots_are_taken_lowest_first_kept_on_replay_and_refused_when_full(world: World) -> None:
    def member(handoff_id: str) -> ChainMember:
        return ChainMember(
            handoff_id=handoff_id,
            root_id="root",
            source_agent="ops",
            target_agent="checkout",
            created_at=START,
        )

    first = world.chains.reserve(member("a"), 2)
    assert (first.slot, first.new) == (1, True)
    assert world.chains.reserve(member("a"), 2).new is False
    assert world.chains.reserve(member("b"), 2).slot == 2
    with pytest.raises(PairFull) as full:
        world.chains.reserve(member("c"), 2)
    assert full.value.holders == ["a", "b"]
    world.chains.release(first)
    assert world.chains.reserve(member("c"), 2).slot == 1
    assert sorted(m.handoff_id for m in world.chains.members("root")) == ["b", "c"]


def test_history_indexes_every_scope_and_pages_newest_first(world: World) -> None:
    for index in range(3):
        stored = _stored()
        record = HandoffRecord(stored=stored, state=HandoffState(updated_at=START))
        handback = _handback(1).model_copy(update={"received_at": START + timedelta(minutes=index)})
        world.history.index_handback(record, handback)
        world.history.index_handback(record, handback)  # idempotent
    assert len(world.history.entries(SITE.lower())) == 3
    page = world.history.search(HistoryQuery(top=2))
    assert [i.handed_back_at for i in page.items] == [START + timedelta(minutes=m) for m in (2, 1)]
    assert page.continuation_token is not None
    rest = world.history.search(HistoryQuery(top=2, continuation_token=page.continuation_token))
    assert [i.handed_back_at for i in rest.items] == [START] and rest.continuation_token is None
    assert world.history.search(HistoryQuery(), frozenset({"payments"})).items == []
