"""The poll index on a real Table Storage (Azurite): a record named like another record's investigation
row (``P1!<handoff id>``) neither forgets that investigation nor takes its row's place."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

from handoff.adapters.azure_storage.clients import StorageClients
from handoff.adapters.azure_storage.human_entries import TableInboundStore
from handoff.settings import Settings

NOW = datetime(2026, 12, 1, 3, 0, tzinfo=UTC)


def _store(azurite) -> tuple[TableInboundStore, str]:
    clients = StorageClients(Settings.from_env({"HANDOFF_STORAGE": azurite.connection_string}))
    clients.ensure()
    return TableInboundStore(clients, clock=lambda: NOW), f"pd{uuid.uuid4().hex[:8]}"


def _polled(store: TableInboundStore, backend: str) -> dict[str, list[str]]:
    return {r.destination: [h.handoff_id for h in r.handoffs] for r in store.polled_records(backend, 100)}


def test_a_record_named_like_an_investigation_row_cannot_forget_that_investigation(azurite):
    store, backend = _store(azurite)
    victim, attacker = str(uuid.uuid4()), str(uuid.uuid4())
    store.index_destination(backend, "P1", victim, poll=True)
    store.index_destination(backend, f"P1!{victim}", attacker, poll=True)

    store.forget(backend, f"P1!{victim}", [attacker], whole=True)

    assert _polled(store, backend) == {"P1": [victim]}


def test_a_record_named_like_an_investigation_row_cannot_take_its_place(azurite):
    store, backend = _store(azurite)
    victim, attacker = str(uuid.uuid4()), str(uuid.uuid4())
    store.index_destination(backend, f"P1!{victim}", attacker, poll=True)
    [record] = store.polled_records(backend, 100)
    assert store.claim_poll(backend, record, NOW)

    store.index_destination(backend, "P1", victim, poll=True)

    assert _polled(store, backend) == {f"P1!{victim}": [attacker], "P1": [victim]}
