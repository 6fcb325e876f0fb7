"""Composition root: builds the service from settings once per process.

Azure SDKs are imported here lazily, on the first request, so importing ``function_app`` stays cheap
(cold start on a serverless plan).
"""

from __future__ import annotations

import logging
import threading
from functools import lru_cache
from typing import TYPE_CHECKING

from handoff.registry import Registry
from handoff.service import HandoffService
from handoff.settings import get_settings

if TYPE_CHECKING:
    from handoff.history import HistorySearch
    from handoff.shared_memory.service import SharedMemoryService

log = logging.getLogger("handoff")
_lock = threading.Lock()


@lru_cache(maxsize=1)
def get_registry() -> Registry:
    """The agent registry, read and validated once."""
    settings = get_settings()
    return Registry.load(settings.resolved_config_path)


def validate_startup() -> None:
    """Fail start-up with a clear message when settings or the registry are invalid."""
    settings = get_settings()
    registry = get_registry()
    log.info(
        "handoff broker: %d agents registered from %s", len(registry.agents), settings.resolved_config_path
    )


@lru_cache(maxsize=1)
def get_service() -> HandoffService:
    """The process-wide service with its storage, queue and agent adapters."""
    with _lock:
        from handoff.adapters.http import make_http_client
        from handoff.adapters.identity import make_credential
        from handoff.adapters.sre_agent import SreAgentGateway
        from handoff.adapters.storage import StorageClients, StorageDeliveryQueue, TableHandoffStore

        settings = get_settings()
        clients = StorageClients(settings)
        if settings.storage_connection_string:
            clients.ensure()
        store = TableHandoffStore(clients, probe=StorageClients(settings, fast=True))
        agents = SreAgentGateway(
            settings, make_credential(settings), make_http_client(settings.http_timeout_seconds)
        )
        from handoff.adapters.history_store import TableHistoryIndex
        from handoff.adapters.shared_memory_store import StorageQueue
        from handoff.settings import SHARED_MEMORY_POISON_QUEUE, SHARED_MEMORY_QUEUE
        from handoff.shared_memory.service import SharedMemoryPublisher

        registry = get_registry()
        return HandoffService(
            settings=settings,
            registry=registry,
            store=store,
            queue=StorageDeliveryQueue(clients),
            agents=agents,
            lifecycle=SharedMemoryPublisher(
                registry, StorageQueue(clients, SHARED_MEMORY_QUEUE, SHARED_MEMORY_POISON_QUEUE), store
            ),
            history=TableHistoryIndex(clients, registry),
        )


@lru_cache(maxsize=1)
def get_shared_memory() -> SharedMemoryService:
    """The process-wide shared-memory writer service (its own queue, state table and HTTP client)."""
    with _lock:
        from handoff.adapters.http import make_http_client
        from handoff.adapters.shared_memory_store import StorageQueue, TableWriteState
        from handoff.adapters.storage import StorageClients
        from handoff.settings import SHARED_MEMORY_POISON_QUEUE, SHARED_MEMORY_QUEUE
        from handoff.shared_memory.service import SharedMemoryService

        settings = get_settings()
        clients = StorageClients(settings)
    service = get_service()
    return SharedMemoryService(
        settings=settings,
        registry=get_registry(),
        store=service.store,
        queue=StorageQueue(clients, SHARED_MEMORY_QUEUE, SHARED_MEMORY_POISON_QUEUE),
        state=TableWriteState(clients),
        http=make_http_client(settings.shared_memory_timeout_seconds),
    )


@lru_cache(maxsize=1)
def get_history() -> HistorySearch:
    """The history search over the index the service writes at every hand-back."""
    history = get_service().history
    assert history is not None
    return history  # type: ignore[return-value]
