"""Composition root: builds the use cases from settings once per process.

Azure SDKs are imported here lazily, on the first request, so importing ``function_app`` stays cheap
(cold start on a serverless plan).
"""

from __future__ import annotations

import logging
import threading
from functools import lru_cache
from typing import TYPE_CHECKING

from handoff.domain.auth import Authorizer, KeyRing, RateLimiter
from handoff.domain.messages.markers import set_portal_base
from handoff.domain.redaction import install_log_redaction
from handoff.domain.registry import Registry
from handoff.domain.work import AlertNote, AlertResolved, HumanEntry
from handoff.services.handoffs import Handoffs, build_handoffs
from handoff.settings import get_settings

if TYPE_CHECKING:
    from handoff.services.alert_intake import AlertIntake
    from handoff.services.human_entries.inbound import HumanInbound
    from handoff.services.human_entries.polling import EntryPoller
    from handoff.services.shared_memory.worker import SharedMemoryService

log = logging.getLogger("handoff")
_lock = threading.Lock()


@lru_cache(maxsize=1)
def get_registry() -> Registry:
    """The agent registry, read and validated once."""
    settings = get_settings()
    return Registry.load(settings.resolved_config_path)


@lru_cache(maxsize=1)
def get_keyring() -> KeyRing:
    """The agents' and operators' caller keys (digests), from the app settings the registry names."""
    return KeyRing(get_registry())


@lru_cache(maxsize=1)
def get_rate_limiter() -> RateLimiter:
    """The per-caller request budget of this instance."""
    settings = get_settings()
    return RateLimiter(settings.rate_limit_per_minute, settings.rate_limit_burst)


def validate_startup() -> None:
    """Fail start-up with a clear message when settings or the registry are invalid; point the thread
    links at ``HANDOFF_PORTAL_URL``."""
    from handoff.adapters.operations_log import quiet_library_logs
    from handoff.adapters.telemetry import configure as configure_telemetry

    install_log_redaction()
    quiet_library_logs()
    settings = get_settings()
    configure_telemetry(settings)
    set_portal_base(settings.portal_url)
    registry = get_registry()
    log.info(
        "handoff broker: %d agents registered from %s", len(registry.agents), settings.resolved_config_path
    )
    if not registry.names_callers:
        log.warning(
            "the registry names no callers: every caller the platform lets in may act as any agent "
            "and read every handoff (docs/security.md)"
        )
    for setting in get_keyring().missing:
        log.error("key setting %s is unset or shorter than 16 characters: that key is refused", setting)


_handoffs: Handoffs | None = None
_alert_service: AlertIntake | None = None
_human_inbound: HumanInbound | None = None


def get_handoffs() -> Handoffs:
    """The process-wide handoff use cases with their storage, queue and agent adapters (built on first
    use, together with the alerts and human-entry use cases whose work the delivery worker runs)."""
    global _handoffs
    if _handoffs is None:
        with _lock:  # the worker runs functions on several threads; build once
            if _handoffs is None:
                _handoffs = _build()
    return _handoffs


def get_alert_service() -> AlertIntake:
    """The Azure Monitor alerts use cases (they share the handoffs' storage, queue and agents)."""
    get_handoffs()
    if _alert_service is None:  # pragma: no cover - built with the handoffs
        raise RuntimeError("the alerts use cases were not built")
    return _alert_service


def get_human_inbound() -> HumanInbound:
    """Humans in the loop: signed webhooks in, human entries into the agents' threads."""
    get_handoffs()
    if _human_inbound is None:  # pragma: no cover - built with the handoffs
        raise RuntimeError("the human-entry use cases were not built")
    return _human_inbound


def _build() -> Handoffs:
    global _alert_service, _human_inbound
    from handoff.adapters.a2a_client import A2AClientGateway
    from handoff.adapters.azure_storage.alerts import TableAlertStore
    from handoff.adapters.azure_storage.chains import TableChainStore
    from handoff.adapters.azure_storage.clients import StorageClients
    from handoff.adapters.azure_storage.handoffs import TableHandoffStore
    from handoff.adapters.azure_storage.history import TableHistoryIndex
    from handoff.adapters.azure_storage.human_entries import TableInboundStore
    from handoff.adapters.azure_storage.listing import TableHandoffIndex
    from handoff.adapters.azure_storage.queues import StorageQueue, delivery_queue
    from handoff.adapters.egress import EgressPolicy
    from handoff.adapters.http import make_http_client
    from handoff.adapters.identity import make_credential
    from handoff.adapters.operations_log import LoggedLifecycle, LoggedPoisonQueue
    from handoff.adapters.sre_agent import SreAgentGateway
    from handoff.adapters.telemetry.wiring import MeteredLifecycle, TracedQueue
    from handoff.services.alert_intake import AlertIntake
    from handoff.services.alert_notes import AlertNotes
    from handoff.services.human_entries.inbound import HumanInbound
    from handoff.services.shared_memory.publisher import SharedMemoryPublisher
    from handoff.settings import (
        DELIVERY_POISON_QUEUE,
        DELIVERY_QUEUE,
        SHARED_MEMORY_POISON_QUEUE,
        SHARED_MEMORY_QUEUE,
    )

    settings = get_settings()
    registry = get_registry()
    clients = StorageClients(settings)
    if settings.storage_connection_string:
        clients.ensure()
    store = TableHandoffStore(clients, probe=StorageClients(settings, fast=True))
    credential = make_credential(settings)
    http = make_http_client(settings.http_timeout_seconds, EgressPolicy.from_settings(settings))
    inbound = TableInboundStore(clients)
    history = TableHistoryIndex(clients, registry)
    handoffs = build_handoffs(
        settings=settings,
        registry=registry,
        store=store,
        queue=TracedQueue(LoggedPoisonQueue(delivery_queue(clients), DELIVERY_POISON_QUEUE), DELIVERY_QUEUE),
        agents=SreAgentGateway(settings, credential, http),
        chains=TableChainStore(clients),
        remote_agents=A2AClientGateway(settings, credential),
        # Metrics and span attributes, one log line per lifecycle point (what docs/operations.md watches),
        # then the shared-memory writes.
        lifecycle=MeteredLifecycle(
            LoggedLifecycle(
                SharedMemoryPublisher(
                    registry,
                    TracedQueue(
                        StorageQueue(clients, SHARED_MEMORY_QUEUE, SHARED_MEMORY_POISON_QUEUE),
                        SHARED_MEMORY_QUEUE,
                    ),
                    store,
                    destinations=inbound,
                )
            )
        ),
        history=history,
        authorizer=Authorizer(registry),
        index=TableHandoffIndex(clients),
    )
    # Built with the handoffs because the delivery worker runs their queue work: the alert notes
    # (alertNote, alertResolved) and the human entries people write on the records the broker writes to
    # (humanEntry).
    ctx = handoffs.context
    alert_store = TableAlertStore(clients)
    alert_notes = AlertNotes(ctx, alert_store)
    handoffs.worker.register(AlertNote, alert_notes.process)
    handoffs.worker.register(AlertResolved, alert_notes.process)
    _alert_service = AlertIntake(ctx, handoffs.intake, alert_store, alert_notes)
    _human_inbound = HumanInbound(ctx, inbound, history)
    handoffs.worker.register(HumanEntry, _human_inbound.process)
    return handoffs


@lru_cache(maxsize=1)
def get_shared_memory() -> SharedMemoryService:
    """The process-wide shared-memory writer service (its own queue, state table, HTTP client and
    vendor writers)."""
    from handoff.adapters.azure_storage.clients import StorageClients
    from handoff.adapters.azure_storage.human_entries import TableInboundStore
    from handoff.adapters.azure_storage.queues import StorageQueue
    from handoff.adapters.azure_storage.shared_memory import TableWriteState
    from handoff.adapters.egress import EgressPolicy
    from handoff.adapters.http import make_http_client
    from handoff.adapters.operations_log import LoggedPoisonQueue
    from handoff.adapters.telemetry.wiring import TracedQueue
    from handoff.adapters.vendor_writers import VendorWriters
    from handoff.adapters.vendors import WriterContext
    from handoff.services.shared_memory.worker import SharedMemoryService
    from handoff.settings import SHARED_MEMORY_POISON_QUEUE, SHARED_MEMORY_QUEUE

    settings = get_settings()
    clients = StorageClients(settings)
    state = TableWriteState(clients)
    http = make_http_client(settings.shared_memory_timeout_seconds, EgressPolicy.from_settings(settings))
    return SharedMemoryService(
        settings=settings,
        registry=get_registry(),
        store=get_handoffs().context.store,
        queue=TracedQueue(
            LoggedPoisonQueue(
                StorageQueue(clients, SHARED_MEMORY_QUEUE, SHARED_MEMORY_POISON_QUEUE),
                SHARED_MEMORY_POISON_QUEUE,
            ),
            SHARED_MEMORY_QUEUE,
        ),
        state=state,
        writers=VendorWriters(
            WriterContext(http=http, settings=settings, state=state, clock=get_handoffs().context.clock)
        ),
        destinations=TableInboundStore(clients),
    )


@lru_cache(maxsize=1)
def get_human_poller() -> EntryPoller:
    """The polling fallback of webhooks: the vendors' APIs read with the writers' HTTP client and
    credentials, entries handed to the same claimer as webhooks."""
    from handoff.adapters.azure_storage.clients import StorageClients
    from handoff.adapters.azure_storage.human_entries import TableInboundStore
    from handoff.adapters.azure_storage.shared_memory import TableWriteState
    from handoff.adapters.egress import EgressPolicy
    from handoff.adapters.http import make_http_client
    from handoff.adapters.vendor_readers import VendorReaders
    from handoff.adapters.vendors import WriterContext
    from handoff.services.human_entries.polling import EntryPoller

    settings = get_settings()
    context = get_handoffs().context
    clients = StorageClients(settings)
    state = TableWriteState(clients)
    http = make_http_client(settings.shared_memory_timeout_seconds, EgressPolicy.from_settings(settings))
    return EntryPoller(
        context,
        index=TableInboundStore(clients),
        readers=VendorReaders(WriterContext(http=http, settings=settings, state=state, clock=context.clock)),
        holds=state,
        claimer=get_human_inbound().claimer,
    )
