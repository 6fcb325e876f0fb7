"""What every handoff use case shares: settings, the registry and authorizer, the ports, and the clock."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime

from handoff.domain.auth import Authorizer
from handoff.domain.errors import NotFound
from handoff.domain.ids import is_uuid
from handoff.domain.messages import MessageContext, thread_url
from handoff.domain.records import HandoffRecord
from handoff.domain.registry import SYSTEM_SOURCES, Registry
from handoff.ports import (
    AgentGateway,
    ChainStore,
    DeliveryQueue,
    HandoffIndex,
    HandoffStore,
    HistoryIndex,
    LifecycleListener,
    NoLifecycleListener,
    RemoteAgentGateway,
)
from handoff.services.chain_rules import ChainRules
from handoff.settings import Settings


def utcnow() -> datetime:
    """The current UTC time (the default clock)."""
    return datetime.now(UTC)


@dataclass(frozen=True)
class ServiceContext:
    """The collaborators of the handoff use cases (and of the alerts and human-entry use cases, which
    reach storage, the queue and the agents through the same attributes)."""

    settings: Settings
    registry: Registry
    store: HandoffStore
    queue: DeliveryQueue
    agents: AgentGateway
    authorizer: Authorizer
    chains: ChainRules
    clock: Callable[[], datetime] = utcnow
    remote_agents: RemoteAgentGateway | None = None
    history: HistoryIndex | None = None
    lifecycle: LifecycleListener = field(default_factory=NoLifecycleListener)
    index: HandoffIndex | None = None

    @classmethod
    def build(
        cls,
        *,
        settings: Settings,
        registry: Registry,
        store: HandoffStore,
        queue: DeliveryQueue,
        agents: AgentGateway,
        clock: Callable[[], datetime] = utcnow,
        chains: ChainStore | None = None,
        remote_agents: RemoteAgentGateway | None = None,
        lifecycle: LifecycleListener | None = None,
        history: HistoryIndex | None = None,
        authorizer: Authorizer | None = None,
        index: HandoffIndex | None = None,
    ) -> ServiceContext:
        """The context over these ports; without ``chains`` only the chain depth rule applies, without
        ``authorizer`` the registry's own rules are used."""
        rules = ChainRules(
            store=store,
            chains=chains,
            max_depth=settings.max_chain_depth,
            max_pair_repeats=settings.max_pair_repeats,
            base_url=settings.base_url,
        )
        return cls(
            settings=settings,
            registry=registry,
            store=store,
            queue=queue,
            agents=agents,
            authorizer=authorizer or Authorizer(registry),
            chains=rules,
            clock=clock,
            remote_agents=remote_agents,
            history=history,
            lifecycle=lifecycle or NoLifecycleListener(),
            index=index,
        )

    def get_record(self, handoff_id: str, *, fresh: bool = True) -> HandoffRecord:
        """The stored handoff, or 404 (storage is not asked about what cannot be a handoff id); with
        ``fresh=False`` as this process last read or wrote it (see :meth:`HandoffStore.get`)."""
        if not is_uuid(handoff_id):
            record = None
        else:
            record = self.store.get(handoff_id) if fresh else self.store.get(handoff_id, fresh=False)
        if record is None:
            raise NotFound(f"no handoff with id '{handoff_id}'")
        return record

    def message_context(self, record: HandoffRecord, target_thread_id: str | None = None) -> MessageContext:
        """What the messages the broker posts about ``record`` need to know besides the record."""
        source = self.registry.find(record.stored.source_agent)
        target = self.registry.find(record.stored.target_agent)
        if source is not None:
            source_label = source.label
        else:
            source_label = SYSTEM_SOURCES.get(record.stored.source_agent, record.stored.source_agent)
        return MessageContext(
            base_url=self.settings.base_url,
            source_label=source_label,
            target_label=target.label if target else record.stored.target_agent,
            target_agent_name=record.stored.target_agent,
            source_thread_url=thread_url(
                source.resource_id if source else None, record.stored.request.source.thread_id
            ),
            target_thread_url=thread_url(
                target.resource_id if target else None, target_thread_id or record.state.target_thread_id
            ),
            budget_bytes=self.settings.start_message_budget_bytes,
        )
