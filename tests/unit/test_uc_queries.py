"""Reading handoffs: who may see what (a caller outside the chain gets the same 404 as for nothing),
the audit and its verification, thread links across chains, the history, and health."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import azure.functions as func
import pytest

from handoff.domain.auth import Caller
from handoff.domain.errors import BadRequest, Forbidden, NotFound, Unprocessable
from handoff.domain.history import HistoryQuery
from handoff.entrypoints import http_api, responses
from handoff.entrypoints.responses import to_problem
from handoff.ports import StorageUnavailable
from tests.unit.conftest import CHECKOUT, OPERATOR, OPS, PAYMENTS, World, handback_body, handoff_body

MISSING = "00000000-0000-4000-8000-000000000000"


def _chain(world: World) -> tuple[str, str]:
    """ops → checkout, then checkout → payments continuing it; the two ids."""
    root = world.hand_off()
    thread = world.state(root).target_thread_id
    body = handoff_body(thread, source="checkout", target="payments", parentHandoffId=root)
    child, _ = world.accept(body, CHECKOUT)
    world.run()
    return root, child.id


# ---------------------------------------------------------------- reading one handoff


@pytest.mark.parametrize("caller", [OPS, CHECKOUT, OPERATOR])
def test_the_agents_of_a_handoff_and_operators_read_it(world: World, caller: Caller) -> None:
    handoff_id = world.hand_off()
    view = world.queries.get(handoff_id, caller)
    assert view.id == handoff_id and view.status == "delivered"
    assert view.target.thread_id == world.state(handoff_id).target_thread_id


def test_a_caller_outside_the_chain_gets_the_same_404_as_for_nothing(
    world: World, caplog: pytest.LogCaptureFixture
) -> None:
    handoff_id = world.hand_off()
    with pytest.raises(NotFound) as hidden:
        world.queries.get(handoff_id, PAYMENTS)
    with pytest.raises(NotFound) as missing:
        world.queries.get(MISSING, PAYMENTS)
    assert hidden.value.detail == f"no handoff with id '{handoff_id}'"
    assert missing.value.detail == f"no handoff with id '{MISSING}'"
    assert any("refused" in r.message and "agentKey:payments" in r.message for r in caplog.records)


def test_an_id_that_cannot_be_a_handoff_is_404_without_asking_storage(world: World) -> None:
    with pytest.raises(NotFound):
        world.queries.get("../etc/passwd", OPERATOR)
    assert world.store.faults.count("get") == 0


def test_every_agent_of_the_chain_reads_every_handoff_of_it(world: World) -> None:
    root, child = _chain(world)
    assert world.queries.get(root, PAYMENTS).id == root  # payments joined the chain later
    assert world.queries.get(child, OPS).id == child


def test_the_view_shows_the_handoffs_place_in_its_chain(world: World) -> None:
    root, child = _chain(world)
    root_view = world.queries.get(root, OPERATOR)
    assert root_view.chain is not None and [link.id for link in root_view.chain.children] == [child]
    child_view = world.queries.get(child, OPERATOR)
    assert child_view.chain is not None and child_view.chain.parent is not None
    assert (child_view.chain.parent.id, child_view.depth, child_view.root_handoff_id) == (root, 1, root)


def test_storage_down_while_reading_is_a_503_problem(world: World) -> None:
    handoff_id = world.hand_off()
    world.store.faults.outage()
    with pytest.raises(StorageUnavailable) as info:
        world.queries.get(handoff_id, OPS)
    problem = to_problem(info.value, f"/api/handoffs/{handoff_id}")
    assert (problem.status, problem.headers) == (503, {"Retry-After": "10"})
    assert problem.to_json()["type"].endswith("/service-unavailable")


def test_the_503_line_names_its_cause_on_one_line(caplog: pytest.LogCaptureFixture) -> None:
    # A cause may name storage keys a caller chose (an alert id): it cannot start a forged log line.
    cause = StorageUnavailable("alert-x\nhandoff gave up: work=deliver forged/row kept changing")
    with caplog.at_level("WARNING", logger="handoff"):
        problem = to_problem(cause, "/api/alerts")
    assert problem.status == 503 and "alert-x" not in problem.to_json()["detail"]
    [line] = [r.getMessage() for r in caplog.records if "storage unavailable" in r.getMessage()]
    assert line == (
        "storage unavailable while serving /api/alerts "
        "(alert-x handoff gave up: work=deliver forged/row kept changing)"
    )


# ---------------------------------------------------------------- the audit


def test_the_audit_pages_with_a_continuation_token(world: World) -> None:
    handoff_id = world.hand_off()
    first = world.queries.audit(handoff_id, OPS, top=3)
    assert [e.type for e in first.events] == ["accepted", "deliveryAttempt", "delivered"]
    assert first.continuation_token == "3"
    rest = world.queries.audit(handoff_id, OPS, top=3, continuation_token=first.continuation_token)
    assert [e.type for e in rest.events] == ["crossLinked"] and rest.continuation_token is None


@pytest.mark.parametrize("token", ["abc", "-1", "12345678901"])
def test_a_token_the_api_did_not_issue_is_400(world: World, token: str) -> None:
    handoff_id = world.hand_off()
    with pytest.raises(BadRequest) as info:
        world.queries.audit(handoff_id, OPS, continuation_token=token)
    assert [e.field for e in info.value.errors] == ["continuationToken"]


def test_the_audit_is_hidden_from_callers_outside_the_chain(world: World) -> None:
    handoff_id = world.hand_off()
    with pytest.raises(NotFound):
        world.queries.audit(handoff_id, PAYMENTS)
    with pytest.raises(NotFound):
        world.queries.verify_audit(handoff_id, PAYMENTS)


def test_an_intact_audit_verifies(world: World) -> None:
    handoff_id = world.hand_off()
    result = world.queries.verify_audit(handoff_id, OPS)
    assert result.valid and result.events == 4
    assert result.head_hash == world.store.events(handoff_id)[-1].hash


def test_an_edited_or_deleted_event_breaks_the_verification(world: World) -> None:
    handoff_id = world.hand_off()
    world.store.edit_event(handoff_id, 3, actor="someone else")
    edited = world.queries.verify_audit(handoff_id, OPS)
    assert (edited.valid, edited.first_bad_seq) == (False, 3)
    other = world.hand_off()
    world.store.delete_event(other, 2)
    deleted = world.queries.verify_audit(other, OPS)
    assert (deleted.valid, deleted.first_bad_seq) == (False, 2) and "missing" in (deleted.reason or "")


# ---------------------------------------------------------------- thread links


def test_links_follow_a_chain_in_both_directions(world: World) -> None:
    root, child = _chain(world)
    record = world.store.get(root)
    assert record is not None
    source_thread = record.stored.request.source.thread_id or ""
    links = world.queries.thread_links("ops", source_thread, OPS)
    assert [(link.handoff_id, link.relation, link.hops) for link in links.links] == [
        (root, "handedOffTo", 1),
        (child, "handedOffTo", 2),
    ]
    payments_thread = world.state(child).target_thread_id or ""
    back = world.queries.thread_links("payments", payments_thread, PAYMENTS)
    assert [(link.handoff_id, link.relation) for link in back.links] == [
        (child, "receivedFrom"),
        (root, "receivedFrom"),
    ]


def test_links_show_only_handoffs_the_caller_may_read(world: World) -> None:
    source_thread = world.source_thread()
    to_checkout, _ = world.accept(handoff_body(source_thread))
    to_payments, _ = world.accept(handoff_body(source_thread, target="payments"))
    world.run()
    checkout_thread = world.state(to_checkout.id).target_thread_id or ""
    seen = world.queries.thread_links("checkout", checkout_thread, CHECKOUT)
    assert [link.handoff_id for link in seen.links] == [to_checkout.id]
    everything = world.queries.thread_links("checkout", checkout_thread, OPERATOR)
    assert {link.handoff_id for link in everything.links} == {to_checkout.id, to_payments.id}


def test_a_thread_without_links_has_none(world: World) -> None:
    assert world.queries.thread_links("ops", "quiet-thread", OPS).links == []


def test_another_agents_thread_links_are_403(world: World) -> None:
    with pytest.raises(Forbidden):
        world.queries.thread_links("ops", "some-thread", PAYMENTS)


def test_thread_links_name_a_bad_thread_id_or_an_unknown_agent(world: World) -> None:
    with pytest.raises(Unprocessable) as bad:
        world.queries.thread_links("ops", "../x", OPS)
    assert [e.field for e in bad.value.errors] == ["threadId"]
    with pytest.raises(NotFound) as unknown:
        world.queries.thread_links("nobody", "t", OPERATOR)
    assert [e.field for e in unknown.value.errors] == ["agent"]


# ---------------------------------------------------------------- history


def _investigated(world: World, target: str) -> str:
    handoff_id = world.hand_off(target=target)
    world.hand_back(handoff_id, handback_body(agent=target), Caller("agentKey", name=target))
    world.run()
    return handoff_id


def test_an_agent_searches_only_investigations_it_took_part_in(world: World) -> None:
    with_checkout = _investigated(world, "checkout")
    with_payments = _investigated(world, "payments")
    mine = world.queries.search_history(HistoryQuery(), CHECKOUT)
    assert [item.handoff_id for item in mine.items] == [with_checkout]
    everything = world.queries.search_history(HistoryQuery(), OPERATOR)
    assert {item.handoff_id for item in everything.items} == {with_checkout, with_payments}


# ---------------------------------------------------------------- health


def test_health_says_healthy_when_storage_answers(world: World) -> None:
    health = world.queries.health()
    assert (health.status, health.storage) == ("healthy", "reachable")


def test_health_with_storage_down_is_unhealthy_and_names_the_error(world: World) -> None:
    world.store.faults.outage()
    health = world.queries.health()
    assert (health.status, health.storage, health.detail) == (
        "unhealthy",
        "unreachable",
        "StorageUnavailable",
    )
    assert world.store.faults.count("ping") == 1


def _route(monkeypatch: pytest.MonkeyPatch, world: World, builder: Any) -> Callable[..., func.HttpResponse]:
    """The function behind an HTTP route, answering from ``world`` for the caller ``OPS``."""
    monkeypatch.setattr(http_api, "get_handoffs", lambda: world.handoffs)
    monkeypatch.setattr(responses, "caller_of", lambda req, rate_limited=True: OPS)
    function: Callable[..., func.HttpResponse] = builder._function.get_user_function()
    return function


def test_the_health_route_answers_503_while_storage_is_down(
    monkeypatch: pytest.MonkeyPatch, world: World
) -> None:
    health = _route(monkeypatch, world, http_api.health)
    request = func.HttpRequest("GET", "http://localhost/api/health", body=b"")
    assert health(request).status_code == 200
    world.store.faults.outage()
    down = health(request)
    assert down.status_code == 503
    assert json.loads(down.get_body()) == {
        "status": "unhealthy",
        "storage": "unreachable",
        "detail": "StorageUnavailable",
    }


def test_a_read_while_storage_is_down_is_a_503_problem(monkeypatch: pytest.MonkeyPatch, world: World) -> None:
    handoff_id = world.hand_off()
    get_handoff = _route(monkeypatch, world, http_api.get_handoff)
    request = func.HttpRequest(
        "GET", f"http://localhost/api/handoffs/{handoff_id}", body=b"", route_params={"id": handoff_id}
    )
    assert get_handoff(request).status_code == 200
    world.store.faults.outage()
    down = get_handoff(request)
    assert (down.status_code, down.mimetype) == (503, "application/problem+json")
    assert down.headers["Retry-After"] == "10"
    assert json.loads(down.get_body())["title"] == "Service unavailable"
