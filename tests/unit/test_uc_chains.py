"""Safe chains at intake: a child handoff needs a parent its caller can see, and the depth and
ping-pong limits refuse (409, audited on the parent) what would loop forever."""

from __future__ import annotations

import pytest

from handoff.domain.auth import Caller
from handoff.domain.errors import Conflict, Unprocessable
from handoff.ports import StorageUnavailable
from tests.unit.conftest import CHECKOUT, OPS, PAYMENTS, World, build_world, handoff_body

MISSING = "00000000-0000-4000-8000-000000000000"


def _child(world: World, parent: str, source: str, target: str) -> str:
    thread = world.state(parent).target_thread_id
    body = handoff_body(thread, source=source, target=target, parentHandoffId=parent)
    view, _ = world.accept(body, Caller("agentKey", name=source))
    world.run()
    return view.id


def test_a_child_joins_its_parents_chain_one_level_deeper(world: World) -> None:
    root = world.hand_off()
    child = _child(world, root, "checkout", "payments")
    record = world.store.get(child)
    assert record is not None
    assert (record.stored.root_id, record.stored.depth) == (root, 1)
    assert world.event(child, "accepted")["parentHandoffId"] == root
    assert {m.handoff_id for m in world.chains.members(root)} == {root, child}


def test_a_chain_deeper_than_the_limit_is_refused_and_audited_on_the_parent() -> None:
    world = build_world(max_chain_depth=1)
    root = world.hand_off()
    child = _child(world, root, "checkout", "payments")
    thread = world.state(child).target_thread_id
    body = handoff_body(thread, source="payments", target="ops", parentHandoffId=child)
    with pytest.raises(Conflict) as info:
        world.accept(body, PAYMENTS)
    assert [e.field for e in info.value.errors] == ["/parentHandoffId"]
    refused = world.event(child, "chainRefused")
    assert (refused["rule"], refused["depth"], refused["limit"], refused["rootHandoffId"]) == (
        "depth",
        2,
        1,
        root,
    )
    assert len(world.store.ids()) == 2


def test_the_same_pair_too_often_in_one_chain_is_refused_naming_the_holders() -> None:
    world = build_world(max_pair_repeats=1)
    root = world.hand_off()
    back = _child(world, root, "checkout", "ops")
    thread = world.state(back).target_thread_id
    body = handoff_body(thread, source="ops", target="checkout", parentHandoffId=back)
    with pytest.raises(Conflict) as info:
        world.accept(body, OPS)
    assert [e.field for e in info.value.errors] == ["/target/agent"]
    refused = world.event(back, "chainRefused")
    assert (refused["rule"], refused["existingHandoffIds"]) == ("pingPong", [root])
    assert world.chains.holders(root, "ops", "checkout") == {1: root}


def test_an_idempotent_replay_of_a_child_keeps_its_slot() -> None:
    world = build_world(max_pair_repeats=1)
    root = world.hand_off()
    thread = world.state(root).target_thread_id
    body = handoff_body(thread, source="checkout", target="payments", parentHandoffId=root)
    first, _ = world.accept(body, CHECKOUT, key="child")
    again, new = world.accept(body, CHECKOUT, key="child")
    assert (again.id, new) == (first.id, False)
    assert world.chains.holders(root, "checkout", "payments") == {1: first.id}


def test_an_unknown_parent_is_422(world: World) -> None:
    with pytest.raises(Unprocessable) as info:
        world.accept(handoff_body(parentHandoffId=MISSING))
    assert [e.field for e in info.value.errors] == ["/parentHandoffId"]


def test_a_parent_outside_the_callers_chains_looks_unknown(world: World) -> None:
    root = world.hand_off()
    with pytest.raises(Unprocessable) as hidden:
        world.accept(handoff_body(source="payments", target="ops", parentHandoffId=root), PAYMENTS)
    with pytest.raises(Unprocessable) as missing:
        world.accept(handoff_body(source="payments", target="ops", parentHandoffId=MISSING), PAYMENTS)
    assert hidden.value.detail == missing.value.detail
    assert "chainRefused" not in world.events(root)


def test_a_chain_index_that_cannot_be_written_stores_nothing(world: World) -> None:
    # A child takes its pair slot in its root's chain before it is stored.
    root = world.hand_off()
    sent = len(world.queue.sent)
    world.chains.faults.fail("reserve")
    thread = world.state(root).target_thread_id
    body = handoff_body(thread, source="checkout", target="payments", parentHandoffId=root)
    with pytest.raises(StorageUnavailable, match="reserve"):
        world.accept(body, CHECKOUT)
    assert world.store.ids() == [root] and len(world.queue.sent) == sent
    assert {m.handoff_id for m in world.chains.members(root)} == {root}


def test_a_root_starts_its_chain_in_the_write_that_stores_it(world: World) -> None:
    world.store.faults.fail("create")
    with pytest.raises(StorageUnavailable, match="create"):
        world.accept(handoff_body())
    assert world.store.ids() == [] and world.queue.sent == [] and world.chains.roots() == []
    view, _ = world.accept(handoff_body())
    assert world.chains.roots() == [view.id]
    assert world.chains.holders(view.id, "ops", "checkout") == {1: view.id}
    assert world.store.faults.count("create") == 2 and world.chains.faults.count("reserve") == 0
