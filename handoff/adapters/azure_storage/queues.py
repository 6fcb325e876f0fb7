"""Queue Storage: a work queue and its poison queue (Azurite locally)."""

from __future__ import annotations

import json
from typing import Any

from handoff.adapters.azure_storage.clients import StorageClients, storage_errors
from handoff.settings import DELIVERY_POISON_QUEUE, DELIVERY_QUEUE

MAX_DELAY_SECONDS = 604_800  # the service's limit: 7 days


class StorageQueue:
    """A work queue and its poison queue on Queue Storage (base64 text, as host.json says).
    Implements :class:`handoff.ports.DeliveryQueue`."""

    def __init__(self, clients: StorageClients, name: str, poison: str) -> None:
        self.queue = clients.queue(name)
        self.poison = clients.queue(poison)

    def send(self, message: dict[str, Any], delay_seconds: float = 0) -> None:
        """Enqueue ``message`` (JSON), visible after ``delay_seconds`` (whole seconds, at most 7 days)."""
        delay = max(0, min(int(delay_seconds), MAX_DELAY_SECONDS))
        with storage_errors():
            self.queue.send_message(json.dumps(message), visibility_timeout=delay)

    def send_poison(self, message: dict[str, Any]) -> None:
        """Park ``message`` on the poison queue."""
        with storage_errors():
            self.poison.send_message(json.dumps(message))


def delivery_queue(clients: StorageClients) -> StorageQueue:
    """The queue that drives deliveries, hand-backs and follow-up work."""
    return StorageQueue(clients, DELIVERY_QUEUE, DELIVERY_POISON_QUEUE)
