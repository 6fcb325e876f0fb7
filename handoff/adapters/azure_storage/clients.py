"""What every Table and Queue Storage adapter shares: the clients built from ``HANDOFF_STORAGE``, the
translation of "cannot reach storage" into :class:`~handoff.ports.StorageUnavailable`, key encoding,
documents split over string properties, and in-process turn-taking per row."""

from __future__ import annotations

import contextlib
import hashlib
import re
import threading
from collections.abc import Callable, Iterator
from typing import Any

from azure.core.exceptions import (
    HttpResponseError,
    ResourceExistsError,
    ServiceRequestError,
    ServiceResponseError,
)
from azure.data.tables import TableClient, TableServiceClient, TableTransactionError
from azure.storage.queue import QueueClient, TextBase64EncodePolicy

from handoff.adapters.azure_storage.batches import prepare_batches_inline
from handoff.adapters.http import make_storage_transport
from handoff.adapters.identity import make_credential
from handoff.ports import StorageUnavailable
from handoff.settings import STORAGE_QUEUES, STORAGE_TABLES, Settings

CHUNK_CHARS = 16_000  # 16k UTF-16 units at most 64 KiB: the Table property limit
KEY_CHARS = 512  # a partition or row key holds 1 KiB of UTF-16: 512 characters (Azurite refuses 513)
_KEY_UNSAFE = re.compile(r"[%/\\#?\x00-\x1f\x7f-\x9f]")


def encode_key(value: str) -> str:
    """Percent-encode the characters Table Storage forbids in keys (and ``%`` itself)."""
    return _KEY_UNSAFE.sub(lambda m: f"%{ord(m.group()):02X}", value)


def fitting_key(prefix: str, value: str) -> str:
    """``prefix`` and ``value`` percent-encoded, as a key storage takes: a value too long for a key once
    encoded (a caller's resource ID of 1,024 characters, most of them ``/``) is keyed by its SHA-256
    instead. The same value always gives the same key, so writes and reads meet."""
    key = prefix + encode_key(value)
    if len(key) <= KEY_CHARS:
        return key
    return f"{prefix}~sha256~{hashlib.sha256(value.encode('utf-8', 'surrogatepass')).hexdigest()}"


@contextlib.contextmanager
def storage_errors() -> Iterator[None]:
    """Turn "cannot reach storage" into :class:`StorageUnavailable` (the entrypoints answer 503)."""
    try:
        yield
    except (ServiceRequestError, ServiceResponseError) as exc:
        raise StorageUnavailable(type(exc).__name__) from exc
    except HttpResponseError as exc:
        if exc.status_code is not None and exc.status_code >= 500:
            raise StorageUnavailable(f"storage answered {exc.status_code}") from exc
        raise


def already_exists(exc: TableTransactionError) -> bool:
    """Whether a transaction failed on an entity it creates that exists (azure-data-tables sets
    ``error_code`` on the error when it decodes the answer; the class does not declare it)."""
    return error_code(exc) == "EntityAlreadyExists"


def error_code(exc: HttpResponseError) -> str | None:
    """The storage error code of a failed request or transaction (``UpdateConditionNotSatisfied``...)."""
    code = getattr(exc, "error_code", None)
    return str(code) if code is not None else None


def chunks(text: str) -> dict[str, str]:
    """``text`` split over ``Doc0..DocN`` string properties, each within the property size limit."""
    parts = [text[i : i + CHUNK_CHARS] for i in range(0, len(text), CHUNK_CHARS)] or [""]
    return {f"Doc{index}": part for index, part in enumerate(parts)}


def joined(entity: dict[str, Any]) -> str:
    """The text :func:`chunks` split over an entity's ``Doc0..DocN`` properties."""
    parts = []
    index = 0
    while f"Doc{index}" in entity:
        parts.append(entity[f"Doc{index}"])
        index += 1
    return "".join(parts)


class KeyedLocks:
    """One lock per key (created on demand, dropped when unused): in-process turn-taking for writers of
    one row, so optimistic concurrency in storage only has to settle races between processes."""

    def __init__(self) -> None:
        self._guard = threading.Lock()
        self._locks: dict[str, tuple[threading.Lock, int]] = {}

    @contextlib.contextmanager
    def hold(self, key: str) -> Iterator[None]:
        """Hold the lock of ``key`` while inside."""
        with self._guard:
            lock, users = self._locks.get(key, (threading.Lock(), 0))
            self._locks[key] = (lock, users + 1)
        try:
            with lock:
                yield
        finally:
            with self._guard:
                lock, users = self._locks[key]
                if users <= 1:
                    del self._locks[key]
                else:
                    self._locks[key] = (lock, users - 1)


class StorageClients:
    """Table and queue clients built once from the ``HANDOFF_STORAGE`` connection settings."""

    def __init__(self, settings: Settings, *, fast: bool = False) -> None:
        # Request-path clients retry a little; the health probe (fast=True) never retries.
        options: dict[str, Any] = (
            {"retry_total": 0} if fast else {"retry_total": 3, "retry_backoff_factor": 0.4}
        )
        # One connection pool for all of these clients (the timeouts belong to the transport), and
        # batches prepared on the calling thread.
        options["transport"] = (
            make_storage_transport(connection_timeout=2, read_timeout=2)
            if fast
            else make_storage_transport(connection_timeout=5, read_timeout=20)
        )
        prepare_batches_inline()
        if settings.count_storage_transactions:
            from handoff.adapters.azure_storage.counting import client_options

            options.update(client_options())
        if settings.storage_connection_string:
            self.tables = TableServiceClient.from_connection_string(
                settings.storage_connection_string, **options
            )
            connection_string = settings.storage_connection_string
            self._queue: Callable[[str], QueueClient] = lambda name: QueueClient.from_connection_string(
                connection_string,
                name,
                message_encode_policy=TextBase64EncodePolicy(),
                **options,
            )
        elif settings.storage_table_service_uri and settings.storage_queue_service_uri:
            client_id = (
                settings.storage_client_id if settings.storage_credential == "managedidentity" else None
            )
            credential = make_credential(settings, client_id)
            self.tables = TableServiceClient(
                settings.storage_table_service_uri, credential=credential, **options
            )
            queue_uri = settings.storage_queue_service_uri
            self._queue = lambda name: QueueClient(
                queue_uri,
                name,
                credential=credential,
                message_encode_policy=TextBase64EncodePolicy(),
                **options,
            )
        else:
            raise RuntimeError(
                "storage is not configured: set HANDOFF_STORAGE to a connection string, or "
                "HANDOFF_STORAGE__tableServiceUri and HANDOFF_STORAGE__queueServiceUri"
            )

    def table(self, name: str) -> TableClient:
        """The client of table ``name``."""
        return self.tables.get_table_client(name)

    def queue(self, name: str) -> QueueClient:
        """The client of queue ``name``."""
        return self._queue(name)

    def ensure(self) -> None:
        """Create the app's tables and queues if missing (Azurite starts empty; in Azure the
        deployment creates them)."""
        with storage_errors():
            self._ensure()

    def _ensure(self) -> None:
        for name in STORAGE_TABLES:
            with contextlib.suppress(ResourceExistsError):
                self.tables.create_table(name)
        for name in STORAGE_QUEUES:
            with contextlib.suppress(ResourceExistsError):
                self.queue(name).create_queue()
