"""The :class:`~handoff.ports.ChainStore` port in memory, with the semantics of the Table adapter
(``handoff/adapters/azure_storage/chains.py``): a handoff takes the lowest free numbered slot of its
ordered agent pair in its chain and is recorded as a member in the same step; a handoff that is a
member already keeps the slot it holds (``new=False``); when every slot is held,
:class:`~handoff.domain.chains.PairFull` names the holders in slot order. The root of a chain starts it
(slot 1 of its pair, and its member record) in the write that creates the root
(:meth:`MemoryChainStore.start`, called by the store)."""

from __future__ import annotations

from handoff.domain.chains import ChainMember, PairFull, PairSlot
from tests.unit.memory.faults import StorageFaults


class MemoryChainStore:
    """Implements :class:`handoff.ports.ChainStore` in memory."""

    def __init__(self) -> None:
        self.faults = StorageFaults()
        # root id -> (source, target) -> slot -> handoff id
        self._slots: dict[str, dict[tuple[str, str], dict[int, str]]] = {}
        # root id -> handoff id -> member (as JSON, so every read is a copy)
        self._members: dict[str, dict[str, str]] = {}

    def reserve(self, member: ChainMember, limit: int) -> PairSlot:
        self.faults.check("reserve")
        known = self._members.get(member.root_id, {}).get(member.handoff_id)
        if known is not None:
            # A member already (an Idempotency-Key replay): it keeps the slot of the pair it holds.
            recorded = ChainMember.model_validate_json(known)
            pair = self._slots.get(member.root_id, {}).get((recorded.source_agent, recorded.target_agent), {})
            own = [slot for slot, holder in sorted(pair.items()) if holder == member.handoff_id]
            return PairSlot(member=recorded, slot=own[0] if own else 0, new=False)
        slots = self._slots.setdefault(member.root_id, {}).setdefault(
            (member.source_agent, member.target_agent), {}
        )
        holders = sorted(slots.items())
        free = [slot for slot in range(1, limit + 1) if slot not in slots]
        if not free:
            raise PairFull([holder for _, holder in holders])
        slots[free[0]] = member.handoff_id
        self._record(member)
        return PairSlot(member=member, slot=free[0], new=True)

    def release(self, slot: PairSlot) -> None:
        self.faults.check("release")
        member = slot.member
        pair = self._slots.get(member.root_id, {}).get((member.source_agent, member.target_agent), {})
        pair.pop(slot.slot, None)
        self._members.get(member.root_id, {}).pop(member.handoff_id, None)

    def members(self, root_id: str) -> list[ChainMember]:
        self.faults.check("members")
        rows = self._members.get(root_id, {})
        return [ChainMember.model_validate_json(rows[key]) for key in sorted(rows)]

    def start(self, root: ChainMember) -> None:
        """The chain of a root handoff begins: slot 1 of its pair and its member record (what the
        store's ``create`` writes with the root's own rows)."""
        self._slots.setdefault(root.root_id, {}).setdefault((root.source_agent, root.target_agent), {})[1] = (
            root.handoff_id
        )
        self._record(root)

    # ---------------------------------------------------------------- behind the port (tests only)

    def roots(self) -> list[str]:
        """The root ids of every chain recorded."""
        return sorted(root for root, members in self._members.items() if members)

    def holders(self, root_id: str, source: str, target: str) -> dict[int, str]:
        """The slots of one ordered pair of a chain and who holds them."""
        return dict(self._slots.get(root_id, {}).get((source, target), {}))

    def _record(self, member: ChainMember) -> None:
        self._members.setdefault(member.root_id, {})[member.handoff_id] = member.model_dump_json()
