"""The handoff use cases, composed: one object per job, built over one :class:`ServiceContext`.

Entrypoints take the use case they need from :class:`Handoffs` (``handoffs.intake.accept(...)``,
``handoffs.worker.process(...)``); nothing here holds logic of its own.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any, NamedTuple

from handoff.domain.auth import Authorizer, Caller
from handoff.domain.models import HandoffRequest
from handoff.domain.records import HandoffRecord
from handoff.domain.registry import Registry
from handoff.ports import (
    AgentGateway,
    ChainStore,
    DeliveryQueue,
    HandoffStore,
    HistoryIndex,
    LifecycleListener,
    RemoteAgentGateway,
)
from handoff.services.a2a_followup import A2AFollowUp
from handoff.services.context import ServiceContext, utcnow
from handoff.services.delivery import Delivery
from handoff.services.handbacks import HandBacks
from handoff.services.intake import Intake
from handoff.services.lifecycle import publish_alert_resolved
from handoff.services.queries import Queries
from handoff.services.source_thread import SourceThread
from handoff.services.sweeper import Sweeper
from handoff.services.thread_watch import ThreadWatch
from handoff.services.worker import Worker
from handoff.settings import Settings


class Handoffs(NamedTuple):
    """Every handoff use case, over one shared context."""

    context: ServiceContext
    queries: Queries
    intake: Intake
    handbacks: HandBacks
    source_thread: SourceThread
    a2a: A2AFollowUp
    watch: ThreadWatch
    delivery: Delivery
    worker: Worker
    sweeper: Sweeper


def compose(ctx: ServiceContext) -> Handoffs:
    """The use cases over ``ctx``; the worker runs the handoff's own kinds of work (``deliver``,
    ``handback``, ``a2aPoll``, ``watch``)."""
    queries = Queries(ctx)
    handbacks = HandBacks(ctx, queries)
    source_thread = SourceThread(ctx, handbacks)
    a2a = A2AFollowUp(ctx, source_thread)
    watch = ThreadWatch(ctx, source_thread)
    delivery = Delivery(ctx, source_thread, a2a, watch)
    return Handoffs(
        context=ctx,
        queries=queries,
        intake=Intake(ctx, queries),
        handbacks=handbacks,
        source_thread=source_thread,
        a2a=a2a,
        watch=watch,
        delivery=delivery,
        worker=Worker(ctx, delivery, source_thread, a2a, watch),
        sweeper=Sweeper(ctx, queries),
    )


def build_handoffs(
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
) -> Handoffs:
    """:func:`compose` over a context built from these ports (see :meth:`ServiceContext.build`)."""
    ctx = ServiceContext.build(
        settings=settings,
        registry=registry,
        store=store,
        queue=queue,
        agents=agents,
        clock=clock,
        chains=chains,
        remote_agents=remote_agents,
        lifecycle=lifecycle,
        history=history,
        authorizer=authorizer,
    )
    return compose(ctx)


class HandoffService:
    """What the alerts and human-entry use cases are given as ``handoffs``: the shared context's
    attributes, the intake of handoffs the broker starts, and the alert-resolved notification.

    Their constructors file their queue handlers in :attr:`op_handlers` (raw ``dict`` messages); the
    composition root registers those with the worker.
    """

    def __init__(self, handoffs: Handoffs) -> None:
        ctx = handoffs.context
        self.context = ctx
        self.settings = ctx.settings
        self.registry = ctx.registry
        self.store = ctx.store
        self.queue = ctx.queue
        self.agents = ctx.agents
        self.clock = ctx.clock
        self._intake = handoffs.intake
        self.op_handlers: dict[str, Callable[[dict[str, Any], int], None]] = {}

    def accept_system(
        self, request: HandoffRequest, handoff_id: str, caller: Caller, details: dict[str, Any] | None = None
    ) -> tuple[HandoffRecord, bool]:
        """See :meth:`Intake.accept_system`."""
        return self._intake.accept_system(request, handoff_id, caller, details)

    def publish_alert_resolved(self, handoff_id: str, details: dict[str, Any] | None = None) -> None:
        """See :func:`~handoff.services.lifecycle.publish_alert_resolved`."""
        publish_alert_resolved(self.context, handoff_id, details)
