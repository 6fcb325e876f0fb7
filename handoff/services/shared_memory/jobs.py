"""What one write says: the note of a lifecycle point with the chain it belongs to, as a job for the
backend's writer."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime

from handoff.domain.messages import thread_url
from handoff.domain.records import HandoffRecord
from handoff.domain.registry import Registry
from handoff.domain.shared_memory.config import Backend
from handoff.domain.shared_memory.content import ChainStep, Note, build_note
from handoff.domain.shared_memory.writes import WriteJob
from handoff.ports import HandoffStore
from handoff.settings import Settings

# The chain's diagram shows at most this many handoffs (the newest and those before it).
MAX_CHAIN = 20


class JobBuilder:
    """Builds write jobs from the stored handoff, its agents and its ancestors."""

    def __init__(self, settings: Settings, registry: Registry, store: HandoffStore) -> None:
        self.settings = settings
        self.registry = registry
        self.store = store

    def job(
        self,
        record: HandoffRecord,
        backend: Backend,
        point: str,
        seq: int,
        details: Mapping[str, object],
        first_at: datetime,
    ) -> WriteJob:
        """The write of ``point`` (``seq``: the hand-back number, else 0) of ``record`` on ``backend``."""
        chain = self.chain(record)
        root = chain[0][1] if chain else record
        note = self._note(record, backend, point, seq, details, tuple(step for step, _ in chain))
        context = root.stored.request.context
        return WriteJob(
            record=record,
            point=point,
            seq=seq,
            backend=backend,
            note=note,
            details=details,
            first_at=first_at,
            root_title=context.title,
            root_summary=context.summary,
        )

    def _note(
        self,
        record: HandoffRecord,
        backend: Backend,
        point: str,
        seq: int,
        details: Mapping[str, object],
        chain: tuple[ChainStep, ...],
    ) -> Note:
        stored = record.stored
        source = self.registry.find(stored.source_agent)
        target = self.registry.find(stored.target_agent)
        return build_note(
            record,
            point,
            seq,
            backend.name,
            base_url=self.settings.base_url,
            source_label=source.label if source else stored.source_agent,
            target_label=target.label if target else stored.target_agent,
            source_thread_url=thread_url(
                source.resource_id if source else None, stored.request.source.thread_id
            ),
            target_thread_url=thread_url(
                target.resource_id if target else None, record.state.target_thread_id
            ),
            chain=chain,
            details=details,
        )

    def chain(self, record: HandoffRecord) -> list[tuple[ChainStep, HandoffRecord]]:
        """The handoff and its ancestors, root first (for the sequence diagram)."""
        items: list[HandoffRecord] = [record]
        while len(items) < MAX_CHAIN and items[-1].stored.request.parent_handoff_id:
            parent = self.store.get(items[-1].stored.request.parent_handoff_id or "")
            if parent is None:
                break
            items.append(parent)
        return [(_step(item), item) for item in reversed(items)]


def _step(record: HandoffRecord) -> ChainStep:
    """One handoff of the chain as the diagram shows it (with the outcome of its last hand-back)."""
    last = record.handbacks[-1] if record.handbacks else None
    return ChainStep(
        handoff_id=record.id,
        source=record.stored.source_agent,
        target=record.stored.target_agent,
        intent=record.stored.request.intent,
        title=record.stored.request.context.title,
        outcome=last.request.outcome if last else None,
    )
