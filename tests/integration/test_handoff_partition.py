"""The handoff store on real storage (Azurite): each write is one transaction of the state with its audit
events, a process writes from its own last copy without reading first, and two processes writing one
handoff still get the semantics of read, change, write-if-unchanged (each store object here is a
process of its own)."""

from __future__ import annotations

import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from typing import Any

import pytest

from handoff.adapters.azure_storage import counting
from handoff.adapters.azure_storage.chains import TableChainStore
from handoff.adapters.azure_storage.clients import StorageClients
from handoff.adapters.azure_storage.handoffs import TableHandoffStore
from handoff.domain.audit import verify_chain
from handoff.domain.chains import ChainMember
from handoff.domain.models import HandbackRequest, HandoffRequest
from handoff.domain.records import HandoffState, NewEvent, StoredHandback, StoredRequest
from handoff.ports import LeaseBusy, StateChanged
from handoff.settings import Settings
from tests.e2e.helpers import handback_body, handoff_body


@pytest.fixture
def clients(azurite) -> StorageClients:
    settings = Settings.from_env(
        {"HANDOFF_STORAGE": azurite.connection_string, "HANDOFF_COUNT_STORAGE_TRANSACTIONS": "true"}
    )
    made = StorageClients(settings)
    made.ensure()
    return made


def _requests(run: Any) -> list[str]:
    """The kinds of the storage requests ``run()`` makes, in order."""
    counting.COUNTS.start_trace()
    try:
        run()
    finally:
        trace = counting.COUNTS.stop_trace()
    return [kind for _, kind, _ in trace]


def _created(store: TableHandoffStore) -> str:
    handoff_id = str(uuid.uuid4())
    now = datetime.now(UTC)
    stored = StoredRequest(
        id=handoff_id, request=HandoffRequest.model_validate(handoff_body(None)), source_agent="ops",
        target_agent="checkout", root_id=handoff_id, body_hash="h", created_at=now, caller="local",
    )  # fmt: skip
    member = ChainMember(
        handoff_id=handoff_id, root_id=handoff_id, source_agent="ops", target_agent="checkout", created_at=now
    )
    accepted = [NewEvent("accepted", "local", {"n": 1})]
    assert store.create(stored, HandoffState(updated_at=now), accepted, member)
    return handoff_id


def _handback(seq: int) -> StoredHandback:
    request = HandbackRequest.model_validate(handback_body())
    return StoredHandback(
        seq=seq, received_at=datetime.now(UTC), request=request, agent="checkout", caller="x"
    )


def test_a_process_writes_from_its_own_copy_one_transaction_a_step(clients):
    store = TableHandoffStore(clients)
    assert store.secret("idempotency")  # the layout is checked once, before the counting starts
    created: list[str] = []
    assert _requests(lambda: created.append(_created(store))) == [counting.BATCH]
    handoff_id = created[0]
    assert _requests(lambda: store.get(handoff_id, fresh=False)) == []
    step = [NewEvent("deliveryAttempt", "broker", {"attempt": 1})]
    assert _requests(lambda: store.update_state(handoff_id, lambda s: setattr(s, "attempts", 1), step)) == [
        counting.BATCH
    ]
    assert _requests(lambda: store.update_state(handoff_id, lambda s: setattr(s, "attempts", 2))) == [
        counting.UPDATE
    ]
    assert _requests(lambda: store.append_audit(handoff_id, "note", "broker", {})) == [counting.BATCH]
    assert _requests(lambda: store.get(handoff_id)) == [counting.PARTITION_QUERY]
    events = store.list_audit(handoff_id)
    assert [e.type for e in events] == ["accepted", "deliveryAttempt", "note"]
    assert verify_chain(handoff_id, events).valid
    # The root's chain began in its first transaction.
    assert [m.handoff_id for m in TableChainStore(clients).members(handoff_id)] == [handoff_id]


def test_two_processes_writing_one_handoff_each_see_the_others_writes(clients):
    first, second = TableHandoffStore(clients), TableHandoffStore(clients)
    handoff_id = _created(first)
    second.update_state(handoff_id, lambda s: setattr(s, "last_error", "theirs"), [NewEvent("a", "b", {})])
    # The first process's copy is stale: its write is refused, it reads, re-applies, and writes.
    kinds = _requests(
        lambda: first.update_state(handoff_id, lambda s: setattr(s, "attempts", 7), [NewEvent("c", "d", {})])
    )
    assert kinds == [counting.BATCH, counting.POINT_READ, counting.BATCH]
    record = second.get(handoff_id)
    assert record is not None and (record.state.attempts, record.state.last_error) == (7, "theirs")
    events = second.list_audit(handoff_id)
    assert [(e.seq, e.type) for e in events] == [(1, "accepted"), (2, "a"), (3, "c")]
    assert verify_chain(handoff_id, events).valid


def test_a_write_on_a_version_is_refused_when_another_process_changed_the_state(clients):
    first, second = TableHandoffStore(clients), TableHandoffStore(clients)
    handoff_id = _created(first)
    record = first.get(handoff_id, fresh=False)
    assert record is not None and record.version
    # An audit event of another process leaves the state as it is: the write is refused by its ETag,
    # reads the state again, finds the same version and is made.
    second.append_audit(handoff_id, "note", "broker", {})
    first.update_state(handoff_id, lambda s: setattr(s, "attempts", 1), version=record.version)
    assert second.get(handoff_id).state.attempts == 1  # type: ignore[union-attr]
    # A change of the state is another version.
    second.update_state(handoff_id, lambda s: setattr(s, "last_error", "theirs"))
    with pytest.raises(StateChanged):
        first.update_state(handoff_id, lambda s: setattr(s, "attempts", 9), version=record.version)
    fresh = first.get(handoff_id)
    assert fresh is not None and fresh.version != record.version
    with pytest.raises(StateChanged):  # the version the first write made is not the stored one either
        first.update_state(handoff_id, lambda s: setattr(s, "attempts", 9), version=record.version)
    first.update_state(handoff_id, lambda s: setattr(s, "attempts", 9), version=fresh.version)
    state = second.get(handoff_id).state  # type: ignore[union-attr]
    assert (state.attempts, state.last_error) == (9, "theirs")


def test_a_mutation_that_refuses_on_a_stale_copy_is_given_the_stored_state(clients):
    first, second = TableHandoffStore(clients), TableHandoffStore(clients)
    handoff_id = _created(first)
    first.update_state(handoff_id, lambda s: setattr(s, "lease_owner", "someone"))
    second.update_state(handoff_id, lambda s: setattr(s, "lease_owner", None))  # let go elsewhere

    def take(state: HandoffState) -> None:
        if state.lease_owner is not None:
            raise LeaseBusy
        state.lease_owner = "me"

    first.update_state(handoff_id, take)  # refused on its copy, taken on the stored state
    assert second.get(handoff_id).state.lease_owner == "me"  # type: ignore[union-attr]


def test_hand_backs_from_two_processes_take_their_own_numbers_and_a_claim_is_held_once(clients):
    first, second = TableHandoffStore(clients), TableHandoffStore(clients)
    handoff_id = _created(first)
    assert second.get(handoff_id) is not None  # the second process has a copy from before
    one, new = first.add_handback(handoff_id, _handback, claim="k1")
    assert (one.seq, new) == (1, True)
    two, new = second.add_handback(handoff_id, _handback)  # its copy knew of no hand-back
    assert (two.seq, new) == (2, True)
    held, new = second.add_handback(handoff_id, _handback, claim="k1")
    assert (held.seq, new) == (1, False)
    record = first.get(handoff_id)
    assert record is not None and [hb.seq for hb in record.handbacks] == [1, 2]
    assert sorted(record.state.handbacks) == [1, 2]


def test_appends_that_wait_for_each_other_are_written_together(clients):
    store = TableHandoffStore(clients)
    handoff_id = _created(store)
    assert store.get(handoff_id, fresh=False) is not None

    def burst() -> None:
        with ThreadPoolExecutor(16) as pool:
            list(pool.map(lambda n: store.append_audit(handoff_id, "alertJoined", "x", {"n": n}), range(120)))

    kinds = _requests(burst)
    events = store.list_audit(handoff_id)
    assert sorted(e.details["n"] for e in events if e.type == "alertJoined") == list(range(120))
    assert [e.seq for e in events] == list(range(1, 122))
    assert verify_chain(handoff_id, events).valid
    assert set(kinds) == {counting.BATCH} and len(kinds) < 120
