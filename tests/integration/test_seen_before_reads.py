""" "Seen before" (the earlier investigations in a start message) on the real history index (Azurite):
each distinct scope is one query, a burst of handoffs on one resource reads it once, and this process's
own index write makes the next handoff read it again."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

from handoff.adapters.azure_storage import counting
from handoff.adapters.azure_storage.clients import StorageClients
from handoff.adapters.azure_storage.history import TableHistoryIndex
from handoff.domain.models import HandbackRequest, HandoffRequest
from handoff.domain.records import HandoffRecord, HandoffState, StoredHandback, StoredRequest
from handoff.domain.registry import Registry
from handoff.settings import HISTORY_TABLE, Settings
from tests.e2e.helpers import SUB, handback_body, handoff_body

AGENTS = frozenset({"ops", "checkout"})


def _history_queries(run) -> int:
    counting.COUNTS.start_trace()
    try:
        run()
    finally:
        trace = counting.COUNTS.stop_trace()
    return sum(
        1 for _, kind, request in trace if kind == counting.PARTITION_QUERY and HISTORY_TABLE in request
    )


def _handed_back(resource: str) -> tuple[HandoffRecord, StoredHandback]:
    body = handoff_body(None)
    body["context"]["resources"] = [resource]
    handoff_id = str(uuid.uuid4())
    now = datetime.now(UTC)
    stored = StoredRequest(
        id=handoff_id, request=HandoffRequest.model_validate(body), source_agent="ops",
        target_agent="checkout", root_id=handoff_id, body_hash="h", created_at=now, caller="local",
    )  # fmt: skip
    record = HandoffRecord(stored=stored, state=HandoffState(updated_at=now, status="handedBack"))
    handback = StoredHandback(
        seq=1, received_at=now, request=HandbackRequest.model_validate(handback_body()), agent="checkout",
        caller="local",
    )  # fmt: skip
    return record, handback


def test_a_burst_on_one_resource_reads_each_scope_once(azurite, registry_config):
    settings = Settings.from_env(
        {"HANDOFF_STORAGE": azurite.connection_string, "HANDOFF_COUNT_STORAGE_TRANSACTIONS": "true"}
    )
    clients = StorageClients(settings)
    clients.ensure()
    index = TableHistoryIndex(clients, Registry.from_data(registry_config))
    group = f"/subscriptions/{SUB}/resourceGroups/burst-{uuid.uuid4().hex[:8]}"
    resource = f"{group}/providers/Microsoft.Web/sites/api"

    queries: list[int] = []

    def seen(root: str, resources: list[str]) -> list[dict]:
        found: list[dict] = []

        def read() -> None:
            found.extend(index.recent_for_resources(resources, root, 3, AGENTS))

        queries.append(_history_queries(read))
        return found

    # Nothing on the resource: its scope, then its resource group's (the same resource twice: one query).
    assert seen("root-1", [resource, resource.upper()]) == []
    # The rest of the burst reads nothing.
    for n in range(2, 6):
        assert seen(f"root-{n}", [resource]) == []
    assert queries == [2, 0, 0, 0, 0]
    # A hand-back indexed here: the next handoff reads the scope again and shows it.
    record, handback = _handed_back(resource)
    index.index_handback(record, handback)
    found = seen("root-6", [resource])
    assert [item["handoffId"] for item in found] == [record.id]
    assert queries[-1] == 2  # the scope, and the human notes of what it shows
    assert seen("root-7", [resource]) == found and queries[-1] == 0
