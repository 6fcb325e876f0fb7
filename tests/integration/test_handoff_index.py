"""The handoff index on real storage (Azurite): entries written by upsert, listed newest first across
day partitions, page after page, with filters and the caller's agents as parameters of queries that
each read one partition (never a scan), and caller text that cannot change what a query reads."""

from __future__ import annotations

import random
import uuid
from datetime import UTC, datetime, timedelta

import pytest

from handoff.adapters.azure_storage import counting
from handoff.adapters.azure_storage.clients import StorageClients
from handoff.adapters.azure_storage.handoffs import TableHandoffStore
from handoff.adapters.azure_storage.listing import MAX_COMPARISONS, TableHandoffIndex, filter_queries
from handoff.domain.auth import Caller
from handoff.domain.errors import BadRequest
from handoff.domain.listing import HandoffList, HandoffSummary, IndexFilter, day_partition, parse_list_query
from handoff.domain.registry import Registry
from handoff.services.context import ServiceContext
from handoff.services.listing import Listing
from handoff.settings import INDEX_TABLE, Settings
from tests.unit.conftest import REGISTRY_DATA as REGISTRY
from tests.unit.memory.agents import MemoryAgentGateway
from tests.unit.memory.queue import MemoryDeliveryQueue

OPERATOR = Caller("operatorKey")
OPS = Caller("agentKey", name="ops")
PAYMENTS = Caller("agentKey", name="payments")


@pytest.fixture
def clients(azurite) -> StorageClients:
    settings = Settings.from_env(
        {"HANDOFF_STORAGE": azurite.connection_string, "HANDOFF_COUNT_STORAGE_TRANSACTIONS": "true"}
    )
    made = StorageClients(settings)
    made.ensure()
    return made


_TAKEN: set[int] = set()


def _days_of_its_own() -> datetime:
    """The first of two UTC days no other World of this process lists (each lists its two days, and
    every test's storage is this worker's own Azurite): pairs start on even days, each at most once."""
    while True:
        offset = random.randrange(0, 6000, 2)
        if offset not in _TAKEN:
            _TAKEN.add(offset)
            return datetime(2001, 1, 1, tzinfo=UTC) + timedelta(days=offset)


class World:
    """Index entries on two days of their own (far from any other test's), and the listing over them."""

    def __init__(self, clients: StorageClients) -> None:
        self.index = TableHandoffIndex(clients)
        # Two UTC days no other test writes to: noon of the second is "now".
        self.day = _days_of_its_own()
        self.now = self.day + timedelta(days=1, hours=12)
        ctx = ServiceContext.build(
            settings=Settings(),
            registry=Registry.from_data(REGISTRY),
            store=TableHandoffStore(clients),
            queue=MemoryDeliveryQueue(),
            agents=MemoryAgentGateway(),
            clock=lambda: self.now,
            index=self.index,
        )
        self.listing = Listing(ctx)

    def put(self, hours: float, source: str = "ops", target: str = "checkout", **extra: str) -> str:
        handoff_id = str(uuid.uuid4())
        created = self.day + timedelta(hours=hours)
        self.index.put(
            HandoffSummary(
                id=handoff_id,
                status=extra.get("status", "delivered"),  # type: ignore[arg-type]
                source=source,
                target=target,
                title=f"Handoff at {hours} h",
                created_at=created,
                updated_at=created,
                alert_rule=extra.get("alert_rule"),
                root_handoff_id=handoff_id,
            )
        )
        return handoff_id

    def list(self, caller: Caller = OPERATOR, **params: str) -> HandoffList:
        return self.listing.list(parse_list_query({"since": self.day.isoformat(), **params}), caller)


@pytest.fixture
def world(clients: StorageClients) -> World:
    return World(clients)


def _traced(run):  # type: ignore[no-untyped-def]
    counting.COUNTS.start_trace()
    try:
        result = run()
    finally:
        trace = counting.COUNTS.stop_trace()
    return result, [(kind, request) for _, kind, request in trace]


def test_a_new_entry_is_inserted_only_where_there_is_none(world: World) -> None:
    # The accept writes its entry while the handoff is queued; a fast worker may write "delivered" first.
    handoff_id = world.put(3, status="delivered")
    (entry,) = world.list().items
    accepted = HandoffSummary(
        id=handoff_id, status="accepted", source="ops", target="checkout", title="Handoff at 3 h",
        created_at=entry.created_at, updated_at=entry.created_at, root_handoff_id=handoff_id,
    )  # fmt: skip
    _, trace = _traced(lambda: world.index.add(accepted))
    assert [kind for kind, _ in trace] == [counting.TABLE_INSERT]  # one request, refused by storage
    assert [(item.id, item.status) for item in world.list().items] == [(handoff_id, "delivered")]

    other = accepted.model_copy(update={"id": str(uuid.uuid4())})
    world.index.add(other)  # no entry yet: written
    assert {(item.id, item.status) for item in world.list().items} == {
        (handoff_id, "delivered"),
        (other.id, "accepted"),
    }


def test_newest_first_across_two_days_page_by_page(world: World) -> None:
    ids = [world.put(hours) for hours in (1, 5, 23, 25, 30)]  # three on the first day, two on the second

    first, trace = _traced(lambda: world.list(top="2"))
    assert [item.id for item in first.items] == [ids[4], ids[3]]
    assert first.continuation_token
    # Today's partition filled the page (the other requests read the broker's secret, once).
    assert [kind for kind, request in trace if INDEX_TABLE in request] == [counting.PARTITION_QUERY]
    second, trace = _traced(lambda: world.list(top="2", continuationToken=first.continuation_token or ""))
    assert [item.id for item in second.items] == [ids[2], ids[1]]
    third = world.list(top="2", continuationToken=second.continuation_token or "")
    assert [item.id for item in third.items] == [ids[0]] and third.continuation_token is None
    item = third.items[0]
    assert (item.source, item.target, item.status, item.title) == (
        "ops",
        "checkout",
        "delivered",
        "Handoff at 1 h",
    )
    assert item.created_at == world.day + timedelta(hours=1)


def test_every_query_reads_one_partition_with_its_values_as_parameters(world: World) -> None:
    world.put(2)
    hostile = "x' or PartitionKey ne 'y"

    page, trace = _traced(lambda: world.list(alertRule=hostile, status="delivered"))

    assert page.items == []
    reads = [kind for kind, request in trace if INDEX_TABLE in request]
    assert reads == [counting.PARTITION_QUERY] * 2  # today's and yesterday's partitions, nothing else


def test_an_entry_is_replaced_by_the_next_upsert(world: World) -> None:
    handoff_id = world.put(3, status="accepted")
    entity = world.index.table.get_entity(day_partition(world.day.date()), _row_of(world, handoff_id))
    assert entity["Status"] == "accepted"

    world.index.put(world.list().items[0].model_copy(update={"status": "failed"}))

    assert [item.id for item in world.list(status="failed").items] == [handoff_id]
    assert world.list(status="accepted").items == []


def _row_of(world: World, handoff_id: str) -> str:
    rows = world.index.table.query_entities(
        "PartitionKey eq @pk and HandoffId eq @id",
        parameters={"pk": day_partition(world.day.date()), "id": handoff_id},
    )
    return str(next(iter(rows))["RowKey"])


def test_filters_and_a_restricted_caller(world: World) -> None:
    mine = world.put(1)
    received = world.put(2, source="checkout", target="ops")
    theirs = world.put(3, source="checkout", target="payments", status="failed")
    alert = world.put(26, source="azure-monitor", target="payments", alert_rule="High CPU")

    assert [i.id for i in world.list(OPS).items] == [received, mine]
    assert [i.id for i in world.list(PAYMENTS).items] == [alert, theirs]
    assert [i.id for i in world.list(PAYMENTS, source="ops").items] == []
    assert [i.id for i in world.list(status="failed").items] == [theirs]
    assert [i.id for i in world.list(target="payments").items] == [alert, theirs]
    assert [i.id for i in world.list(alertRule="high cpu").items] == [alert]
    assert [i.id for i in world.list(source="checkout", target="ops").items] == [received]


def test_a_token_changed_by_the_caller_is_refused(world: World) -> None:
    for hours in (1, 2, 3):
        world.put(hours)
    token = world.list(top="1").continuation_token or ""

    with pytest.raises(BadRequest) as refused:
        world.list(top="1", continuationToken=token[:-2] + ("AA" if not token.endswith("AA") else "BB"))
    assert refused.value.errors[0].field == "continuationToken"


# A principal that may act as many agents: more than Table Storage's filter takes, at two comparisons each.
MANY = [f"team{index}" for index in range(9)]
MANY_REGISTRY = {
    "agents": [
        *REGISTRY["agents"],
        *(
            {
                "name": name,
                "resourceId": "/subscriptions/00000000-0000-0000-0000-000000000000/resourceGroups/rg"
                f"/providers/Microsoft.App/agents/{name}",
                "endpoint": f"https://{name}.eastus2.azuresre.ai",
                "callers": ["many-agents-app"],
            }
            for name in MANY
        ),
    ],
    "operators": {"keySetting": "KEY_OPERATORS"},
}
MANY_AGENTS = Caller("principal", principal_id="many-agents-app")


def _comparisons(clauses: list[str]) -> int:
    return sum(
        any(f" {op} @" in part for op in ("eq", "gt", "le")) for c in clauses for part in c.split(" or ")
    )


def test_a_query_never_has_more_comparisons_than_table_storage_takes() -> None:
    """Table Storage refuses a filter of more than 15 comparisons (Azurite does not check it)."""
    agents = frozenset([*MANY, "ops"])
    where = IndexFilter(status="delivered", source="ops", target="team1", alert_rule="cpu", agents=agents)

    queries = filter_queries(datetime(2026, 12, 2, tzinfo=UTC).date(), where, "0|x", "9|~")

    assert [_comparisons(clauses) <= MAX_COMPARISONS for clauses, _ in queries] == [True] * len(queries)
    # Between them, the queries ask for every agent of the caller, and each for the same rows.
    asked = [value for _, params in queries for key, value in params.items() if key.startswith("seen")]
    assert sorted(asked) == sorted(agents)
    assert all(params["status"] == "delivered" and params["after"] == "0|x" for _, params in queries)
    few = IndexFilter(agents=frozenset({"ops", "checkout"}))
    [(clauses, params)] = filter_queries(datetime(2026, 12, 2, tzinfo=UTC).date(), few, None, None)
    assert _comparisons(clauses) == 5 and {params["seen0"], params["seen1"]} == {"checkout", "ops"}
    assert (
        filter_queries(datetime(2026, 12, 2, tzinfo=UTC).date(), IndexFilter(agents=frozenset()), None, None)
        == []
    )


def test_a_caller_of_many_agents_lists_theirs_and_nothing_else(world: World) -> None:
    listing = Listing(
        ServiceContext.build(
            settings=Settings(),
            registry=Registry.from_data(MANY_REGISTRY),
            store=world.listing.ctx.store,
            queue=MemoryDeliveryQueue(),
            agents=MemoryAgentGateway(),
            clock=lambda: world.now,
            index=world.index,
        )
    )
    sent = world.put(1, source="team2", target="checkout")
    theirs = world.put(2, source="checkout", target="payments")
    received = world.put(3, source="checkout", target="team4")
    world.put(26, source="payments", target="checkout")
    between = world.put(27, source="team0", target="team8")  # agents the two queries of a day ask for

    def ids(**params: str) -> list[str]:
        query = parse_list_query({"since": world.day.isoformat(), **params})
        return [item.id for item in listing.list(query, MANY_AGENTS).items]

    assert ids() == [between, received, sent]
    assert ids(top="2") == [between, received]
    token = listing.list(parse_list_query({"since": world.day.isoformat(), "top": "2"}), MANY_AGENTS)
    rest = parse_list_query(
        {"since": world.day.isoformat(), "top": "2", "continuationToken": token.continuation_token or ""}
    )
    assert [item.id for item in listing.list(rest, MANY_AGENTS).items] == [sent]
    assert ids(source="checkout") == [received]
    assert ids(target="payments") == [] and theirs not in ids(status="delivered")
    assert ids(source="checkout", target="team4", status="delivered") == [received]
