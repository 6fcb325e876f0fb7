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
    from handoff.adapters.storage import StorageClients
    from handoff.alert_service import AlertService

log = logging.getLogger("handoff")
_lock = threading.Lock()
_extensions: dict[str, object] = {}


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
        service = HandoffService(
            settings=settings,
            registry=get_registry(),
            store=store,
            queue=StorageDeliveryQueue(clients),
            agents=agents,
        )
        _attach_alerts(service, clients)
        return service


def _attach_alerts(service: HandoffService, clients: StorageClients) -> None:
    # Built with the service because the delivery worker runs the alert notes' queue work.
    from handoff.adapters.alert_storage import TableAlertStore
    from handoff.alert_service import AlertService

    _extensions["alerts"] = AlertService(service, TableAlertStore(clients))


def get_alert_service() -> AlertService:
    """The Azure Monitor alerts use cases (share the service's storage, queue and agents)."""
    get_service()
    return _extensions["alerts"]  # type: ignore[return-value]
