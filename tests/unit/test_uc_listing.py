"""Listing handoffs (``GET /api/handoffs``, MCP ``handoff_list``) from the handoff index: newest first
across day partitions, pages and their signed tokens, filters, who sees what, the parameters a caller
may get wrong, and the index following each status change (one write per change, healed on retry)."""

from __future__ import annotations

import base64
from datetime import timedelta
from typing import Any

import pytest

from handoff.domain.auth import Caller
from handoff.domain.errors import BadRequest, ServiceUnavailable
from handoff.domain.history import parse_history_query
from handoff.domain.listing import (
    DAYS_PER_PAGE,
    DEFAULT_LOOKBACK_DAYS,
    HandoffList,
    HandoffSummary,
    ListQuery,
    parse_list_query,
    summary_of,
)
from handoff.entrypoints.mcp_tools import HandoffListArguments
from handoff.services.listing import Listing
from tests.unit.conftest import CHECKOUT, OPERATOR, OPS, PAYMENTS, World, handoff_body, run_during


def _list(world: World, caller: Caller = OPERATOR, **params: str) -> HandoffList:
    return world.handoffs.listing.list(parse_list_query(params), caller)


def _ids(page: HandoffList) -> list[str]:
    return [item.id for item in page.items]


def _every_page(world: World, caller: Caller = OPERATOR, **params: str) -> list[list[str]]:
    pages = []
    token: str | None = None
    for _ in range(50):
        page = _list(world, caller, **params, **({"continuationToken": token} if token else {}))
        pages.append(_ids(page))
        token = page.continuation_token
        if token is None:
            return pages
    raise AssertionError("the pages never ended")


def _later(world: World, **kwargs: Any) -> str:
    """A handoff run to delivery (or failure), then a second passes."""
    handoff_id = world.hand_off(**kwargs)
    world.clock.advance(1)
    return handoff_id


def _status(world: World, handoff_id: str) -> str | None:
    entry = world.index.entry(handoff_id)
    return None if entry is None else entry["Status"]


def _made(world: World, count: int, *, every: timedelta, **kwargs: Any) -> list[str]:
    """``count`` delivered handoffs, ``every`` apart (oldest first)."""
    ids = []
    for _ in range(count):
        ids.append(world.hand_off(**kwargs))
        world.clock.advance(every.total_seconds())
    return ids


# ---------------------------------------------------------------- order and pages


def test_handoffs_are_listed_newest_first_across_days_a_page_at_a_time(world: World) -> None:
    ids = _made(world, 7, every=timedelta(hours=9))  # over three UTC days

    pages = _every_page(world, top="3")

    assert pages[:3] == [ids[6:3:-1], ids[3:0:-1], ids[:1]]
    assert [i for page in pages for i in page] == ids[::-1]
    assert len(world.index.partitions) == 3


def test_a_page_of_exactly_the_rest_ends_with_an_empty_page_and_no_token(world: World) -> None:
    ids = _made(world, 4, every=timedelta(minutes=1))

    first = _list(world, top="4")

    assert _ids(first) == ids[::-1] and first.continuation_token
    last = _list(world, top="4", continuationToken=first.continuation_token)
    assert last.items == [] and last.continuation_token is None


def test_the_items_are_the_summary_of_each_handoff(world: World) -> None:
    handoff_id = world.hand_off()
    view = world.queries.get(handoff_id, OPERATOR)

    item = _list(world).items[0]

    assert item.id == handoff_id and item.status == "delivered"
    assert (item.source, item.target, item.intent, item.severity) == (
        "ops",
        "checkout",
        "investigate",
        "Sev2",
    )
    assert item.title == view.context.title
    assert item.created_at == view.created_at and item.updated_at == view.updated_at
    assert item.root_handoff_id == handoff_id and item.parent_handoff_id is None and item.depth == 0


def test_without_since_the_listing_goes_back_31_days_and_reads_nothing_older(world: World) -> None:
    old = world.hand_off()
    world.clock.advance(timedelta(days=DEFAULT_LOOKBACK_DAYS + 2).total_seconds())
    new = world.hand_off()
    world.index.reads.clear()

    assert _every_page(world) == [[new]]
    assert len(world.index.reads) <= DEFAULT_LOOKBACK_DAYS + 1
    since = (world.clock() - timedelta(days=40)).isoformat()
    pages = _every_page(world, since=since)  # more days than one request reads: two pages
    assert [i for page in pages for i in page] == [new, old] and len(pages) == 2


def test_a_later_page_keeps_since_even_when_the_caller_does_not_send_it_again(world: World) -> None:
    before = world.hand_off()
    world.clock.advance(60)
    since = world.clock().isoformat()
    first = _later(world)
    second = world.hand_off()

    page = _list(world, since=since, top="1")
    assert _ids(page) == [second] and page.continuation_token
    rest = _list(world, continuationToken=page.continuation_token)  # no since this time
    assert _ids(rest) == [first] and before not in _ids(rest)


def test_since_is_a_time_not_just_a_day(world: World) -> None:
    before = world.hand_off()
    world.clock.advance(60)
    since = world.clock().isoformat()
    after = world.hand_off()

    assert _ids(_list(world, since=since)) == [after]
    assert before in _ids(_list(world))


def test_one_request_reads_a_bounded_number_of_days_and_its_token_carries_on(world: World) -> None:
    old = world.hand_off()
    world.clock.advance(timedelta(days=200).total_seconds())
    since = (world.clock() - timedelta(days=300)).isoformat()
    world.index.reads.clear()

    first = _list(world, since=since)

    assert first.items == [] and first.continuation_token
    assert len(world.index.reads) == DAYS_PER_PAGE
    pages = _every_page(world, since=since)
    assert [i for page in pages for i in page] == [old]
    assert len(pages) == 10  # 300 days, 31 a request


# ---------------------------------------------------------------- filters and callers


def test_filters_by_status_source_and_target(world: World) -> None:
    delivered = _later(world)
    world.agents.faults.fail_next(status=400, ops={"create_thread"})
    failed = _later(world, target="payments")
    to_audit = _later(world, source="checkout", target="payments")

    assert _ids(_list(world, status="failed")) == [failed]
    assert _ids(_list(world, status="delivered")) == [to_audit, delivered]
    assert _ids(_list(world, source="ops")) == [failed, delivered]
    assert _ids(_list(world, target="PAYMENTS")) == [to_audit, failed]  # names in any case
    assert _ids(_list(world, source="checkout", status="failed")) == []


def test_filters_by_alert_rule(world: World) -> None:
    stamp = world.clock()
    for number, rule in enumerate(("High CPU", None, "high cpu", "Disk full")):
        world.index.put(
            HandoffSummary(
                id=f"00000000-0000-4000-8000-00000000000{number}",
                status="delivered",
                source="azure-monitor",
                target="checkout",
                title="Alert",
                created_at=stamp + timedelta(seconds=number),
                updated_at=stamp,
                alert_rule=rule,
                root_handoff_id=f"00000000-0000-4000-8000-00000000000{number}",
            )
        )

    found = _list(world, alertRule="High CPU")

    assert [item.id[-1] for item in found.items] == ["2", "0"]
    assert _ids(_list(world, source="azure-monitor", alertRule="Disk full"))[0].endswith("3")


def test_an_agent_lists_only_the_handoffs_it_handed_off_or_received(world: World) -> None:
    mine = _later(world)  # ops -> checkout
    received = _later(world, source="checkout", target="ops")
    theirs = _later(world, source="checkout", target="payments")

    assert _ids(_list(world, OPS)) == [received, mine]
    assert _ids(_list(world, PAYMENTS)) == [theirs]
    assert _ids(_list(world, CHECKOUT)) == [theirs, received, mine]
    assert _ids(_list(world, OPERATOR)) == [theirs, received, mine]
    # A filter naming someone else's handoffs narrows the caller's own; it does not widen them.
    assert _ids(_list(world, PAYMENTS, source="ops")) == []
    assert _ids(_list(world, OPS, target="payments")) == []


def test_a_caller_who_is_no_agent_lists_nothing(world: World) -> None:
    world.hand_off()

    assert _list(world, Caller("functionKey")).items == []


# ---------------------------------------------------------------- the token


def test_a_forged_or_changed_token_is_refused_naming_the_parameter(world: World) -> None:
    _made(world, 3, every=timedelta(minutes=1))
    token = _list(world, top="1").continuation_token
    assert token is not None
    body, signature = token.split(".")
    payload = base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)).decode()
    older = payload.replace(payload[:8], "20200101", 1)
    forged = base64.urlsafe_b64encode(older.encode()).decode().rstrip("=") + "." + signature
    flipped = token[:-1] + ("A" if token[-1] != "A" else "B")
    injected = (
        base64.urlsafe_b64encode(b"20250602|20250503|' or PartitionKey ne '").decode().rstrip("=") + ".x"
    )

    for bad in (forged, flipped, injected, "not-a-token", body):
        with pytest.raises(BadRequest) as refused:
            _list(world, top="1", continuationToken=bad)
        assert [error.field for error in refused.value.errors] == ["continuationToken"]


def test_a_token_of_another_broker_is_refused(world: World) -> None:
    _made(world, 2, every=timedelta(minutes=1))
    token = _list(world, top="1").continuation_token
    assert token is not None
    other = Listing(world.handoffs.context)
    other._key = b"another broker's key, 32 bytes!!"

    with pytest.raises(BadRequest):
        other.list(ListQuery(top=1, continuation_token=token), OPERATOR)


# ---------------------------------------------------------------- bad parameters


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"status": "done"}, "status"),
        ({"top": "0"}, "top"),
        ({"top": "101"}, "top"),
        ({"top": "ten"}, "top"),
        ({"since": "yesterday"}, "since"),
        ({"since": "1733123456"}, "since"),
        ({"since": "2026-13-45"}, "since"),
        # An offset that takes the time past year 1 or 9999 (no 500), and times no row key can say.
        ({"since": "0001-01-01T00:00:00+14:00"}, "since"),
        ({"since": "9999-12-31T23:59:59-14:00"}, "since"),
        ({"since": "1900-01-01"}, "since"),
        ({"since": "9999-12-31"}, "since"),
        ({"source": "ops' or 'a' eq 'a"}, "source"),
        ({"target": "../checkout"}, "target"),
        ({"alertRule": "x" * 261}, "alertRule"),
        ({"continuationToken": "abc"}, "continuationToken"),
        ({"$filter": "PartitionKey ne ''"}, "$filter"),
    ],
)
def test_every_bad_parameter_is_a_400_naming_it(params: dict[str, str], field: str) -> None:
    with pytest.raises(BadRequest) as refused:
        parse_list_query(params)
    assert [error.field for error in refused.value.errors] == [field]


def test_the_function_key_in_the_query_string_is_the_host_s_not_an_unknown_parameter() -> None:
    # ?code=<function key> is how a function key may be sent; the host passes it on with the query.
    query = parse_list_query({"code": "the-function-key", "status": "failed"})
    assert query.status == "failed"
    with pytest.raises(BadRequest) as refused:
        parse_list_query({"code": "the-function-key", "Code": "x"})
    assert [error.field for error in refused.value.errors] == ["Code"]
    assert "the-function-key" not in str(refused.value.detail)
    # The history search shares the check.
    assert parse_history_query({"code": "the-function-key", "agent": "ops"}).agent == "ops"


def test_since_takes_a_date_or_a_date_time_with_or_without_offset() -> None:
    day = parse_list_query({"since": "2026-12-02"}).since
    assert day is not None and day.isoformat() == "2026-12-02T00:00:00+00:00"
    with_offset = parse_list_query({"since": "2026-12-02T08:00:00+02:00"}).since
    assert with_offset is not None and with_offset.isoformat() == "2026-12-02T06:00:00+00:00"
    assert parse_list_query({"since": "2026-12-02T08:00:00Z", "top": "100"}).top == 100


def test_the_mcp_arguments_are_checked_like_the_query_string() -> None:
    query = HandoffListArguments.model_validate({"status": "failed", "top": 5}).query()
    assert (query.status, query.top) == ("failed", 5)
    with pytest.raises(BadRequest) as refused:
        HandoffListArguments.model_validate({"since": "last week"}).query()
    assert refused.value.errors[0].field == "since"


# ---------------------------------------------------------------- the index follows the status


def test_each_status_change_writes_the_entry_once(world: World) -> None:
    source = world.source_thread()
    view, _ = world.accept(handoff_body(source))
    assert world.index.writes == 1
    assert _status(world, view.id) == "accepted"

    world.run()
    assert world.index.writes == 2 and _status(world, view.id) == "delivered"

    world.hand_back(view.id)
    assert world.index.writes == 2  # a hand-back received changes no status
    world.run()
    assert world.index.writes == 3 and _status(world, view.id) == "handedBack"


def test_a_failed_delivery_and_its_replay_are_listed_as_they_happen(world: World) -> None:
    world.agents.faults.fail_next(status=400, ops={"create_thread"})
    handoff_id = world.hand_off()
    assert _ids(_list(world, status="failed")) == [handoff_id]

    world.sweeper.retry(handoff_id, OPERATOR)
    assert _ids(_list(world, status="accepted")) == [handoff_id]
    world.run()
    assert _ids(_list(world, status="delivered")) == [handoff_id]
    assert _list(world, status="failed").items == []


def test_an_entry_left_unwritten_is_written_again_when_the_step_is_retried(world: World) -> None:
    source = world.source_thread()
    view, _ = world.accept(handoff_body(source))
    world.index.faults.fail("put")  # the write after the "delivered" state write is lost

    world.run()
    assert world.state(view.id).status == "delivered"
    assert _status(world, view.id) == "accepted"

    world.queue.send({"op": "deliver", "handoffId": view.id})  # the host's retry of the message
    world.run()
    assert _status(world, view.id) == "delivered"
    assert world.agents.ops("create_thread") == ["create_thread"]  # and nothing was done twice


def test_an_index_that_cannot_be_written_does_not_fail_the_handoff(world: World) -> None:
    world.index.faults.outage()
    handoff_id = world.hand_off()

    assert world.state(handoff_id).status == "delivered"
    world.index.faults.outage(False)
    world.hand_back(handoff_id)
    world.run()
    assert _status(world, handoff_id) == "handedBack"


def _delivered_elsewhere(world: World, handoff_id: str) -> None:
    """The worker's "delivered" entry, written while the state this process read still says accepted."""
    record = world.store.get(handoff_id)
    assert record is not None
    world.index.put(
        summary_of(
            record.model_copy(update={"state": record.state.model_copy(update={"status": "delivered"})})
        )
    )


def test_the_accept_writes_the_entry_and_queues_the_handoff_before_it_answers(world: World) -> None:
    world.queue.faults.fail("send")
    with pytest.raises(ServiceUnavailable):
        world.accept(handoff_body(), key="k")
    (stored_id,) = world.store.ids()
    # The two writes run at once; the queue's failure does not lose the entry (operators see it queued).
    assert _status(world, stored_id) == "accepted"
    assert world.index.faults.count("add") == 1


def test_a_replay_writes_a_missing_entry_but_never_replaces_a_newer_one(world: World) -> None:
    world.index.faults.fail("add")  # the first request's entry is lost
    body = handoff_body(world.source_thread())
    view, _ = world.accept(body, key="k")
    assert _status(world, view.id) is None
    world.accept(body, key="k")
    assert _status(world, view.id) == "accepted"

    # A replay that read "accepted" just before the worker wrote "delivered" leaves the newer entry.
    _delivered_elsewhere(world, view.id)
    world.accept(body, key="k")
    assert _status(world, view.id) == "delivered"


def test_the_entry_is_written_while_the_handoff_is_queued(world: World) -> None:
    send, add, overlapped = run_during(world.queue.send, world.index.add)
    world.queue.send, world.index.add = send, add  # type: ignore[method-assign]
    view, _ = world.accept(handoff_body())
    assert overlapped == [True, True]
    assert _status(world, view.id) == "accepted" and len(world.queue.messages()) == 1
