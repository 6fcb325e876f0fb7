"""The humans-in-the-loop use cases as one object: webhooks in (request path), entries into the agents'
threads (the delivery queue's ``humanEntry`` work, which the composition root registers with the
delivery worker)."""

from __future__ import annotations

import os
from collections.abc import Mapping

from handoff.domain.work import HumanEntry
from handoff.ports import HumanNotesIndex, InboundStore
from handoff.services.context import ServiceContext
from handoff.services.human_entries.claiming import EntryClaimer
from handoff.services.human_entries.fanout import EntryFanOut
from handoff.services.human_entries.intake import Answer, WebhookIntake
from handoff.services.human_entries.posting import EntryPosting


class HumanInbound:
    """Receives signed webhooks and posts human entries into the agents' threads (queue work); its
    :attr:`claimer` is what the poller hands the entries it reads to."""

    def __init__(
        self,
        ctx: ServiceContext,
        store: InboundStore,
        notes: HumanNotesIndex | None = None,
        environ: Mapping[str, str] | None = None,
    ) -> None:
        self.claimer = EntryClaimer(ctx, store, EntryFanOut(ctx, notes))
        self.intake = WebhookIntake(ctx, self.claimer, environ if environ is not None else os.environ)
        self.posting = EntryPosting(ctx)

    def receive(self, backend_name: str, headers: Mapping[str, str], body: bytes) -> Answer:
        """Verify, deduplicate, match and queue one webhook delivery (see :class:`WebhookIntake`)."""
        return self.intake.receive(backend_name, headers, body)

    def process(self, message: HumanEntry, dequeue_count: int = 1) -> None:
        """Post one queued entry into the threads it lists (see :class:`EntryPosting`)."""
        self.posting.process(message, dequeue_count)
