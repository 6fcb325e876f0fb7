"""The chain index on Azure Table Storage (Azurite locally): table ``handoffchains``, partition = root id.

Rows of a chain's partition:

- ``member|<handoffId>``: the handoff's parent, agents and depth (the chain view reads these);
- ``pair|<source>|<target>|<NNN>``: slot NNN of the ordered agent pair, holding one handoff id.

A handoff takes the lowest free slot of its pair and records itself as a member in one entity-group
transaction (both rows share the partition). The slot row is created with insert-if-absent, so two
concurrent requests for the same last slot cannot both succeed: the loser's whole transaction fails with
``EntityAlreadyExists``, it re-reads the slots and is refused when none is left. Counting rows and then
inserting a row with a fresh key would let both through.
"""

from __future__ import annotations

import contextlib
from datetime import datetime
from typing import Any

from azure.core.exceptions import ResourceNotFoundError
from azure.data.tables import TableTransactionError

from handoff.adapters.azure_storage.handoffs import (
    StorageClients,
    already_exists,
    encode_key,
    storage_errors,
)
from handoff.domain.chains import ChainMember, PairFull, PairSlot
from handoff.ports import StorageUnavailable
from handoff.settings import CHAIN_TABLE

MAX_RACE_RETRIES = 20


def _pair_prefix(member: ChainMember) -> str:
    return f"pair|{encode_key(member.source_agent)}|{encode_key(member.target_agent)}|"


class TableChainStore:
    """Implements :class:`handoff.domain.chains.ChainStore` on Table Storage."""

    def __init__(self, clients: StorageClients) -> None:
        self.table = clients.table(CHAIN_TABLE)

    def reserve(self, member: ChainMember, limit: int) -> PairSlot:
        prefix = _pair_prefix(member)
        for _ in range(MAX_RACE_RETRIES):
            with storage_errors():
                rows = list(
                    self.table.query_entities(
                        "PartitionKey eq @pk and RowKey ge @low and RowKey lt @high",
                        parameters={"pk": member.root_id, "low": prefix, "high": prefix + "~"},
                        select=["RowKey", "HandoffId"],
                    )
                )
            holders = sorted((int(row["RowKey"].rsplit("|", 1)[1]), str(row["HandoffId"])) for row in rows)
            own = [slot for slot, holder in holders if holder == member.handoff_id]
            if own:
                # The same handoff asked again (an Idempotency-Key replay): it keeps its slot.
                with storage_errors():
                    self.table.upsert_entity(self._member_entity(member))
                return PairSlot(member=member, slot=own[0], new=False)
            taken = {slot for slot, _ in holders}
            free = [slot for slot in range(1, limit + 1) if slot not in taken]
            if not free:
                raise PairFull([holder for _, holder in holders])
            slot_entity = {
                "PartitionKey": member.root_id,
                "RowKey": f"{prefix}{free[0]:03d}",
                "HandoffId": member.handoff_id,
                "CreatedAt": member.created_at,
            }
            try:
                with storage_errors():
                    self.table.submit_transaction(
                        [("create", slot_entity), ("upsert", self._member_entity(member))]
                    )
            except TableTransactionError as exc:
                if already_exists(exc):
                    continue  # a concurrent request took this slot: look again
                raise
            return PairSlot(member=member, slot=free[0], new=True)
        raise StorageUnavailable(f"pair slots of chain {member.root_id} kept changing")

    def release(self, slot: PairSlot) -> None:
        member = slot.member
        keys = (f"{_pair_prefix(member)}{slot.slot:03d}", f"member|{member.handoff_id}")
        with storage_errors():
            for row_key in keys:
                with contextlib.suppress(ResourceNotFoundError):
                    self.table.delete_entity(member.root_id, row_key)

    def members(self, root_id: str) -> list[ChainMember]:
        with storage_errors():
            rows = self.table.query_entities(
                "PartitionKey eq @pk and RowKey ge 'member|' and RowKey lt 'member}'",
                parameters={"pk": root_id},
            )
            return [
                ChainMember(
                    handoff_id=row["HandoffId"],
                    root_id=root_id,
                    parent_id=row.get("ParentId") or None,
                    source_agent=row["SourceAgent"],
                    target_agent=row["TargetAgent"],
                    depth=int(row["Depth"]),
                    created_at=_as_datetime(row["CreatedAt"]),
                )
                for row in rows
            ]

    @staticmethod
    def _member_entity(member: ChainMember) -> dict[str, Any]:
        return {
            "PartitionKey": member.root_id,
            "RowKey": f"member|{member.handoff_id}",
            "HandoffId": member.handoff_id,
            "ParentId": member.parent_id or "",
            "SourceAgent": member.source_agent,
            "TargetAgent": member.target_agent,
            "Depth": member.depth,
            "CreatedAt": member.created_at,
        }


def _as_datetime(value: Any) -> datetime:
    return value if isinstance(value, datetime) else datetime.fromisoformat(str(value))
