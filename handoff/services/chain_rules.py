"""The safe-chain rules (depth and ping-pong limits), applied by intake when it accepts a handoff."""

from __future__ import annotations

from handoff.domain.audit_events import EventType
from handoff.domain.auth import Caller
from handoff.domain.chains import ChainMember, PairFull, PairSlot
from handoff.domain.errors import Conflict, FieldError
from handoff.domain.models import ChainLink, HandoffChain
from handoff.domain.records import HandoffRecord
from handoff.ports import ChainStore, HandoffStore


class ChainRules:
    """The safe-chain rules, applied by the intake use case when it accepts a handoff."""

    def __init__(
        self,
        *,
        store: HandoffStore,
        chains: ChainStore | None,
        max_depth: int,
        max_pair_repeats: int,
        base_url: str,
    ) -> None:
        # Without a chain index (a service built bare, as some tests do) only the depth rule applies:
        # it needs nothing but the parent record.
        self.store = store
        self.chains = chains
        self.max_depth = max_depth
        self.max_pair_repeats = max_pair_repeats
        self.base_url = base_url

    def check_depth(self, parent: HandoffRecord, source: str, target: str, caller: Caller) -> int:
        """The new handoff's depth; 409 (audited on the parent) when it is deeper than the limit."""
        depth = parent.stored.depth + 1
        if depth <= self.max_depth:
            return depth
        self.store.append_audit(
            parent.id,
            EventType.CHAIN_REFUSED,
            caller.describe(),
            {"rule": "depth", "depth": depth, "limit": self.max_depth, "source": source, "target": target,
             "rootHandoffId": parent.stored.root_id},
        )  # fmt: skip
        raise Conflict(
            f"chain {parent.stored.root_id} is too deep: this handoff would have depth {depth} "
            f"(ancestors through parentHandoffId) and the limit is {self.max_depth}; "
            "finish the investigation in this thread or hand back instead",
            errors=[
                FieldError(field="/parentHandoffId", message=f"chain depth limit {self.max_depth} reached")
            ],
        )

    def reserve(self, member: ChainMember, parent: HandoffRecord | None, caller: Caller) -> PairSlot | None:
        """Take the member's pair slot; 409 (audited on the parent) when the pair is used up in the chain."""
        if self.chains is None:
            return None
        try:
            return self.chains.reserve(member, self.max_pair_repeats)
        except PairFull as full:
            pair = f"{member.source_agent} → {member.target_agent}"
            if parent is not None:
                self.store.append_audit(
                    parent.id,
                    EventType.CHAIN_REFUSED,
                    caller.describe(),
                    {"rule": "pingPong", "source": member.source_agent, "target": member.target_agent,
                     "limit": self.max_pair_repeats, "rootHandoffId": member.root_id,
                     "existingHandoffIds": full.holders},
                )  # fmt: skip
            raise Conflict(
                f"chain {member.root_id} already has {len(full.holders)} handoffs {pair} "
                f"({', '.join(full.holders)}); at most {self.max_pair_repeats} are allowed per chain, "
                "so the agents do not pass the investigation back and forth forever",
                errors=[
                    FieldError(
                        field="/target/agent",
                        message=f"{pair} used {len(full.holders)} times in chain {member.root_id}",
                    )
                ],
            ) from None

    def starts(self, root: ChainMember) -> ChainMember | None:
        """What the store records with a root handoff to start its chain index (its member record and
        slot 1 of its pair, in the write that creates it); None without a chain index."""
        return root if self.chains is not None else None

    def release(self, slot: PairSlot | None) -> None:
        """Undo :meth:`reserve` of a handoff that was not created (only slots this request took)."""
        if slot is not None and slot.new and self.chains is not None:
            self.chains.release(slot)

    def members(self, root_id: str) -> list[ChainMember]:
        """Every recorded handoff of the chain (none without a chain index)."""
        return self.chains.members(root_id) if self.chains is not None else []

    def view(self, record: HandoffRecord) -> HandoffChain:
        """Parent and children of the handoff, from the chain index."""
        found = self.members(record.stored.root_id)
        members = {m.handoff_id: m for m in found}
        parent_id = record.stored.request.parent_handoff_id
        parent = None
        if parent_id:
            known = members.get(parent_id)
            # Handoffs stored before the chain index existed are known by id only.
            parent = self._link(known) if known else ChainLink(id=parent_id, link=self._url(parent_id))
        children = sorted(
            (self._link(m) for m in members.values() if m.parent_id == record.id),
            key=lambda link: (link.created_at is None, link.created_at, link.id),
        )
        return HandoffChain(parent=parent, children=children)

    def _link(self, member: ChainMember) -> ChainLink:
        return ChainLink(
            id=member.handoff_id,
            source=member.source_agent,
            target=member.target_agent,
            depth=member.depth,
            created_at=member.created_at,
            link=self._url(member.handoff_id),
        )

    def _url(self, handoff_id: str) -> str:
        return f"{self.base_url}/api/handoffs/{handoff_id}"
