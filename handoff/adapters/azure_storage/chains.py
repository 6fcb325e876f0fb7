"""The chain index on Azure Table Storage (Azurite locally): rows of table ``handoffs`` in the partition
of the chain's root (see :mod:`~handoff.adapters.azure_storage.layout`):

- ``chain|member|<handoffId>``: the handoff's parent, agents and depth (the chain view reads these);
- ``chain|pair|<source>|<target>|<NNN>``: slot NNN of the ordered agent pair, holding one handoff id.

A root handoff starts its chain in the transaction that creates it (its member row and slot 1 of its
pair: see :meth:`TableHandoffStore.create`). A child takes the lowest free slot of its pair and records
itself as a member in one entity-group transaction in the root's partition (one more transaction than
its own). Both rows are created with insert-if-absent, the member row first, so two concurrent requests
for the same last slot cannot both succeed: the loser's whole transaction fails with
``EntityAlreadyExists`` on the slot, it looks at the slots and is refused when none is left; and a
handoff that is already a member (an Idempotency-Key replay) is told by the conflict on its member row.
Counting rows and then inserting a row with a fresh key would let both through.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from azure.core.exceptions import ResourceNotFoundError
from azure.data.tables import TableTransactionError

from handoff.adapters.azure_storage.clients import StorageClients, already_exists, storage_errors
from handoff.adapters.azure_storage.layout import CHAIN_MEMBER_PREFIX, member_row, pair_prefix, pair_row
from handoff.domain.chains import ChainMember, PairFull, PairSlot
from handoff.ports import StorageUnavailable
from handoff.settings import HANDOFF_TABLE

MAX_RACE_RETRIES = 20
CHAIN_MEMBER_END = CHAIN_MEMBER_PREFIX[:-1] + "}"  # "}" sorts right after "|"


def member_entity(member: ChainMember) -> dict[str, Any]:
    """The ``chain|member|<id>`` row of a handoff."""
    return {
        "PartitionKey": member.root_id,
        "RowKey": member_row(member.handoff_id),
        "HandoffId": member.handoff_id,
        "ParentId": member.parent_id or "",
        "SourceAgent": member.source_agent,
        "TargetAgent": member.target_agent,
        "Depth": member.depth,
        "CreatedAt": member.created_at,
    }


def slot_entity(member: ChainMember, slot: int) -> dict[str, Any]:
    """The ``chain|pair|...|NNN`` row of the pair slot ``slot``, held by ``member``."""
    return {
        "PartitionKey": member.root_id,
        "RowKey": pair_row(member.source_agent, member.target_agent, slot),
        "HandoffId": member.handoff_id,
        "CreatedAt": member.created_at,
    }


class TableChainStore:
    """Implements :class:`handoff.ports.ChainStore` on Table Storage."""

    def __init__(self, clients: StorageClients) -> None:
        self.table = clients.table(HANDOFF_TABLE)

    def reserve(self, member: ChainMember, limit: int) -> PairSlot:
        # First try the lowest slot without looking (a pair's first handoff in a chain takes it); after a
        # conflict on the slot, look at the slots and take the lowest free one.
        slot = 1
        for _ in range(MAX_RACE_RETRIES):
            operations = [("create", member_entity(member)), ("create", slot_entity(member, slot))]
            try:
                with storage_errors():
                    self.table.submit_transaction(operations)
                return PairSlot(member=member, slot=slot, new=True)
            except TableTransactionError as exc:
                if not already_exists(exc):
                    raise
                if exc.index == 0:
                    # The handoff is a member already (an Idempotency-Key replay): it keeps its slot.
                    return self._held(member)
            holders = self._holders(member)
            own = [taken for taken, holder in holders if holder == member.handoff_id]
            if own:
                return PairSlot(member=member, slot=own[0], new=False)
            taken = {number for number, _ in holders}
            free = [number for number in range(1, limit + 1) if number not in taken]
            if not free:
                raise PairFull([holder for _, holder in holders])
            slot = free[0]
        raise StorageUnavailable(f"pair slots of chain {member.root_id} kept changing")

    def _held(self, member: ChainMember) -> PairSlot:
        """The slot a handoff that is a member already holds (in the pair it was recorded with)."""
        with storage_errors():
            row = self.table.get_entity(member.root_id, member_row(member.handoff_id))
        recorded = member.model_copy(
            update={"source_agent": row["SourceAgent"], "target_agent": row["TargetAgent"]}
        )
        own = [taken for taken, holder in self._holders(recorded) if holder == member.handoff_id]
        return PairSlot(member=recorded, slot=own[0] if own else 0, new=False)

    def _holders(self, member: ChainMember) -> list[tuple[int, str]]:
        """The taken slots of the member's pair and who holds them, in slot order."""
        prefix = pair_prefix(member.source_agent, member.target_agent)
        with storage_errors():
            rows = list(
                self.table.query_entities(
                    "PartitionKey eq @pk and RowKey ge @low and RowKey lt @high",
                    parameters={"pk": member.root_id, "low": prefix, "high": prefix + "~"},
                    select=["RowKey", "HandoffId"],
                )
            )
        return sorted((int(row["RowKey"].rsplit("|", 1)[1]), str(row["HandoffId"])) for row in rows)

    def release(self, slot: PairSlot) -> None:
        member = slot.member
        keys = (pair_row(member.source_agent, member.target_agent, slot.slot), member_row(member.handoff_id))
        with storage_errors():
            try:
                self.table.submit_transaction(
                    [("delete", {"PartitionKey": member.root_id, "RowKey": row_key}) for row_key in keys]
                )
            except TableTransactionError:
                for row_key in keys:  # one of them is gone already: delete the other alone
                    try:
                        self.table.delete_entity(member.root_id, row_key)
                    except ResourceNotFoundError:
                        continue

    def members(self, root_id: str) -> list[ChainMember]:
        with storage_errors():
            rows = self.table.query_entities(
                "PartitionKey eq @pk and RowKey ge @low and RowKey lt @high",
                parameters={"pk": root_id, "low": CHAIN_MEMBER_PREFIX, "high": CHAIN_MEMBER_END},
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


def _as_datetime(value: Any) -> datetime:
    return value if isinstance(value, datetime) else datetime.fromisoformat(str(value))
