"""The handoff use cases, composed: one object per job, built over one :class:`ServiceContext`.

Entrypoints take the use case they need from :class:`Handoffs` (``handoffs.intake.accept(...)``,
``handoffs.worker.process(...)``); nothing here holds logic of its own.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import NamedTuple

from handoff.domain.auth import Authorizer
from handoff.domain.registry import Registry
from handoff.ports import (
    AgentGateway,
    ChainStore,
    DeliveryQueue,
    HandoffIndex,
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
from handoff.services.listing import Listing
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
    listing: Listing
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
        listing=Listing(ctx),
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
    index: HandoffIndex | None = None,
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
        index=index,
    )
    return compose(ctx)
