"""Safe chains: how deep a chain of handoffs may grow and how often two agents may pass work back and forth.

A chain is every handoff that shares a root (``parentHandoffId`` links a handoff to the one it continues).
Two rules, both checked here and nowhere else, before a handoff is stored:

- **Depth**: a handoff's depth is the number of its ancestors (a root handoff has depth 0). A handoff
  deeper than ``HANDOFF_MAX_CHAIN_DEPTH`` (default 5) is refused with ``409``.
- **Ping-pong**: within one chain the same ordered pair of agents (A → B) may appear at most
  ``HANDOFF_MAX_PAIR_REPEATS`` times (default 2); the next one is refused with ``409`` naming the chain.

A refused handoff is never created, so the refusal is audited on the parent's audit log.

The pair rule must hold under concurrent requests, so it is enforced by storage, not by counting: each
ordered pair has ``limit`` numbered slots per chain, and a handoff takes a free slot with an
insert-if-absent write. Two requests racing for the last slot cannot both win; the loser re-reads and
is refused. See :class:`ChainStore`.
"""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, ConfigDict


class ChainMember(BaseModel):
    """One handoff as the chain index knows it (partition = the chain's root id)."""

    model_config = ConfigDict(frozen=True)

    handoff_id: str
    root_id: str
    parent_id: str | None = None
    source_agent: str
    target_agent: str
    depth: int = 0
    created_at: datetime


class PairSlot(BaseModel):
    """A slot of an ordered agent pair in a chain, held by one handoff. ``new`` when this request took it."""

    model_config = ConfigDict(frozen=True)

    member: ChainMember
    slot: int
    new: bool


class PairFull(Exception):
    """Every slot of the ordered pair is held by other handoffs of the chain."""

    def __init__(self, holders: list[str]) -> None:
        super().__init__(", ".join(holders))
        self.holders = holders
