"""Sweeper and the append-only audit, on the real storage adapters against Azurite."""

from __future__ import annotations

import ast
import contextlib
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

from azure.core.exceptions import ResourceExistsError
from azure.storage.queue import QueueClient, TextBase64DecodePolicy

from handoff.adapters.azure_storage.clients import StorageClients
from handoff.adapters.azure_storage.handoffs import TableHandoffStore
from handoff.adapters.azure_storage.layout import AUDIT_PREFIX
from handoff.adapters.azure_storage.queues import StorageQueue
from handoff.domain.models import HandbackRequest, HandoffRequest
from handoff.domain.records import HandbackDelivery, HandoffState, NewEvent, StoredHandback, StoredRequest
from handoff.domain.registry import Registry
from handoff.services.handoffs import build_handoffs
from handoff.settings import Settings
from tests.e2e.helpers import handback_body, handoff_body

ROOT = Path(__file__).resolve().parents[2]


# A queue of its own: the test broker sharing this Azurite takes work from the delivery queue at once.
SWEEP_QUEUE = "sweeper-test"
IDS = {f"5a0e9a4e-1111-4111-8111-00000000000{n}" for n in (1, 2, 3, 4)}


class _TheseHandoffs(TableHandoffStore):
    """The real Table adapter; the sweeper sees only this test's handoffs (other tests share the table)."""

    def stale_pending(self, older_than: datetime) -> list[str]:
        return [found for found in super().stale_pending(older_than) if found in IDS]


class _NoAgents:
    """Sweeping never calls an agent; any call is a test failure."""

    def __getattr__(self, name):
        raise AssertionError(f"unexpected agent call {name}")


def test_sweeper_requeues_stranded_deliveries_and_hand_backs(azurite, registry_config):
    settings = Settings.from_env({"HANDOFF_STORAGE": azurite.connection_string})
    clients = StorageClients(settings)
    clients.ensure()
    store = _TheseHandoffs(clients)
    queue = StorageQueue(clients, SWEEP_QUEUE, f"{SWEEP_QUEUE}-poison")
    with contextlib.suppress(ResourceExistsError):
        queue.queue.create_queue()
    now = datetime.now(UTC)
    later = now + timedelta(seconds=settings.sweep_after_seconds + 1)
    sweeper = build_handoffs(
        settings=settings,
        registry=Registry.from_data(registry_config),
        store=store,
        queue=queue,
        agents=_NoAgents(),  # type: ignore[arg-type]
        clock=lambda: later,
    ).sweeper
    # A handoff written but never enqueued (the enqueue failed and the caller got a 503).
    request = HandoffRequest.model_validate(handoff_body(None))
    handoff_id = "5a0e9a4e-1111-4111-8111-000000000001"
    stored = StoredRequest(id=handoff_id, request=request, source_agent="ops", target_agent="checkout",
                           root_id=handoff_id, body_hash="h", created_at=now, caller="local")  # fmt: skip
    assert store.create(stored, HandoffState(updated_at=now))
    assert not store.create(stored, HandoffState(updated_at=now))  # insert-if-absent

    # A delivered handoff whose hand-back was stored but never queued (same failure, later step).
    other_id = "5a0e9a4e-1111-4111-8111-000000000002"
    delivered = HandoffState(updated_at=now, status="delivered", target_thread_id="t-b", crosslink="posted")
    other = stored.model_copy(update={"id": other_id, "root_id": other_id})
    assert store.create(other, delivered)
    handback = HandbackRequest.model_validate(handback_body())
    store.add_handback(
        other_id,
        lambda seq: StoredHandback(
            seq=seq, received_at=now, request=handback, agent="checkout", caller="local"
        ),
    )
    store.update_state(other_id, lambda state: state.handbacks.setdefault(1, HandbackDelivery()))
    # And one with nothing left to do: the sweeper must leave it alone.
    done_id = "5a0e9a4e-1111-4111-8111-000000000003"
    assert store.create(stored.model_copy(update={"id": done_id, "root_id": done_id}), delivered)
    # Delivered, and the worker died before the cross-link into A's thread was posted.
    crosslink_id = "5a0e9a4e-1111-4111-8111-000000000004"
    unlinked = delivered.model_copy(update={"crosslink": "pending", "crosslink_attempted": True})
    assert store.create(stored.model_copy(update={"id": crosslink_id, "root_id": crosslink_id}), unlinked)

    assert sweeper.sweep().requeued == 3

    peek = QueueClient.from_connection_string(
        azurite.connection_string, SWEEP_QUEUE, message_decode_policy=TextBase64DecodePolicy()
    )
    queued = [json.loads(m.content) for m in peek.peek_messages(max_messages=32)]
    assert {"op": "deliver", "handoffId": handoff_id, "attempt": 1} in queued
    assert {"op": "handback", "handoffId": other_id, "seq": 1, "attempt": 1} in queued
    assert {"op": "deliver", "handoffId": crosslink_id, "attempt": 1} in queued
    assert not [m for m in queued if m.get("handoffId") == done_id]
    assert [e.type for e in store.list_audit(handoff_id)] == ["redeliveryScheduled"]
    assert [e.details["op"] for e in store.list_audit(other_id)] == ["handback"]


def test_audit_events_are_only_ever_inserted():
    """No code path updates or deletes an audit event: the adapters build audit rows in one place, and
    only ever to create them in a transaction (the rows of the audit are never a target of anything
    else)."""
    adapters = ROOT / "handoff" / "adapters" / "azure_storage"
    builders = []
    for path in sorted(adapters.glob("*.py")):
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            if isinstance(node, ast.Tuple) and len(node.elts) >= 2:
                call = node.elts[1]
                if isinstance(call, ast.Call) and getattr(call.func, "id", None) == "audit_entity":
                    first = node.elts[0]
                    assert isinstance(first, ast.Constant) and first.value == "create", (
                        f"{path.name}:{node.lineno}: audit row used in a {ast.unparse(first)} operation"
                    )
                    builders.append(path.name)
            if isinstance(node, ast.Call) and getattr(node.func, "id", None) == "audit_entity":
                parent_ok = any(
                    isinstance(t, ast.Tuple) and len(t.elts) >= 2 and t.elts[1] is node
                    for t in ast.walk(tree)
                )
                assert parent_ok, f"{path.name}:{node.lineno}: audit_entity(...) outside a create operation"
    assert builders, "audit rows are built somewhere"
    # and no module outside the adapters spells the audit's row keys
    users = [
        path.relative_to(ROOT)
        for path in (ROOT / "handoff").rglob("*.py")
        if "AUDIT_PREFIX" in path.read_text() and path.parent != adapters
    ]
    assert users == []


class _Recording:
    """A table client that writes down every entity operation (and passes it on)."""

    def __init__(self, table) -> None:
        self._table = table
        self.operations: list[tuple[str, str]] = []

    def submit_transaction(self, operations, **kwargs):
        for operation in operations:
            self.operations.append((operation[0], operation[1]["RowKey"]))
        return self._table.submit_transaction(operations, **kwargs)

    def _single(self, kind):
        def run(entity, *args, **kwargs):
            self.operations.append((kind, entity["RowKey"]))
            return getattr(self._table, kind)(entity, *args, **kwargs)

        return run

    def __getattr__(self, name):
        if name in ("create_entity", "update_entity", "upsert_entity"):
            return self._single(name)
        if name == "delete_entity":

            def delete(partition, row, *args, **kwargs):
                self.operations.append(("delete_entity", row))
                return self._table.delete_entity(partition, row, *args, **kwargs)

            return delete
        return getattr(self._table, name)


def test_every_write_of_an_audit_row_is_an_insert(azurite):
    settings = Settings.from_env({"HANDOFF_STORAGE": azurite.connection_string})
    clients = StorageClients(settings)
    clients.ensure()
    store = TableHandoffStore(clients)
    recording = _Recording(store.table)
    store.table = recording  # type: ignore[assignment]
    store._rows.table = recording  # type: ignore[assignment]
    handoff_id = "5a0e9a4e-1111-4111-8111-0000000000a1"
    now = datetime.now(UTC)
    request = HandoffRequest.model_validate(handoff_body(None))
    stored = StoredRequest(id=handoff_id, request=request, source_agent="ops", target_agent="checkout",
                           root_id=handoff_id, body_hash="h", created_at=now, caller="local")  # fmt: skip
    assert store.create(stored, HandoffState(updated_at=now), [NewEvent("accepted", "local", {})])
    store.update_state(
        handoff_id, lambda s: setattr(s, "attempts", 1), [NewEvent("deliveryAttempt", "broker", {})]
    )
    store.append_audit(handoff_id, "note", "broker", {"n": 1})
    handback = HandbackRequest.model_validate(handback_body())
    store.add_handback(
        handoff_id,
        lambda seq: StoredHandback(
            seq=seq, received_at=now, request=handback, agent="checkout", caller="local"
        ),
        claim="claim-1",
        events=lambda hb: [NewEvent("handBackReceived", "checkout", {"seq": hb.seq})],
    )
    store.update_state(handoff_id, lambda s: setattr(s, "attempts", 2))
    audit_writes = [(kind, row) for kind, row in recording.operations if row.startswith(AUDIT_PREFIX)]
    assert [row for _, row in audit_writes] == [f"{AUDIT_PREFIX}{seq:010d}" for seq in (1, 2, 3, 4)]
    assert {kind for kind, _ in audit_writes} == {"create"}
    assert [e.type for e in store.list_audit(handoff_id)] == [
        "accepted",
        "deliveryAttempt",
        "note",
        "handBackReceived",
    ]
