"""The humans-in-the-loop use cases as one object: webhooks in (request path), entries into the agents'
threads (the delivery queue's ``humanEntry`` work)."""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any, Protocol

from handoff.domain.registry import Registry
from handoff.domain.shared_memory.human_entries import HUMAN_ENTRY_OP
from handoff.ports import AgentGateway, DeliveryQueue, HandoffStore, HumanNotesIndex, InboundStore
from handoff.services.human_entries.claiming import EntryClaimer
from handoff.services.human_entries.fanout import EntryFanOut
from handoff.services.human_entries.intake import Answer, WebhookIntake
from handoff.services.human_entries.posting import EntryPosting
from handoff.settings import Settings

# A queue-message handler: (message, dequeue count).
OpHandler = Callable[[dict[str, Any], int], None]


class Handoffs(Protocol):
    """What human entries use of the handoff service: its ports, settings and clock, and the table of
    queue-message handlers of the delivery worker."""

    @property
    def settings(self) -> Settings: ...

    @property
    def registry(self) -> Registry: ...

    @property
    def store(self) -> HandoffStore: ...

    @property
    def queue(self) -> DeliveryQueue: ...

    @property
    def agents(self) -> AgentGateway: ...

    @property
    def clock(self) -> Callable[[], datetime]: ...

    @property
    def op_handlers(self) -> dict[str, OpHandler]: ...


class HumanInbound:
    """Receives signed webhooks and posts human entries into the agents' threads (queue work); its
    :attr:`claimer` is what the poller hands the entries it reads to."""

    def __init__(
        self,
        handoffs: Handoffs,
        store: InboundStore,
        notes: HumanNotesIndex | None = None,
        environ: Mapping[str, str] | None = None,
        clock: Callable[[], datetime] | None = None,
    ) -> None:
        fanout = EntryFanOut(
            registry=handoffs.registry, store=handoffs.store, queue=handoffs.queue, notes=notes
        )
        self.claimer = EntryClaimer(inbound=store, handoffs=handoffs.store, fanout=fanout)
        self.intake = WebhookIntake(
            registry=handoffs.registry,
            claimer=self.claimer,
            environ=environ if environ is not None else os.environ,
            clock=clock or handoffs.clock,
        )
        self.posting = EntryPosting(
            settings=handoffs.settings,
            registry=handoffs.registry,
            store=handoffs.store,
            queue=handoffs.queue,
            agents=handoffs.agents,
        )
        handoffs.op_handlers[HUMAN_ENTRY_OP] = self.process

    def receive(self, backend_name: str, headers: Mapping[str, str], body: bytes) -> Answer:
        """Verify, deduplicate, match and queue one webhook delivery (see :class:`WebhookIntake`)."""
        return self.intake.receive(backend_name, headers, body)

    def process(self, message: dict[str, Any], dequeue_count: int = 1) -> None:
        """Post one queued entry into the threads it lists (see :class:`EntryPosting`)."""
        self.posting.process(message, dequeue_count)
