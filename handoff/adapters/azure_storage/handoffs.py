"""Azure Table Storage and Queue Storage adapters (Azurite locally).

Layout (table ``handoffs``, partition = handoff id): ``request`` (written once), ``state`` (updated
with ETags), ``handback-NNNNN`` (written once each). Large documents are split over ``Doc0..DocN``
string properties so a 256 KiB request fits an entity. Audit events (table ``handoffaudit``) are only
ever inserted: the row key is the event's sequence number and insert-if-absent makes it unique.
"""

from __future__ import annotations

import base64
import contextlib
import json
import re
import secrets
import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from typing import Any, TypeVar

from azure.core import MatchConditions
from azure.core.exceptions import (
    HttpResponseError,
    ResourceExistsError,
    ResourceModifiedError,
    ResourceNotFoundError,
    ServiceRequestError,
    ServiceResponseError,
)
from azure.data.tables import TableClient, TableServiceClient, TableTransactionError, UpdateMode
from azure.storage.queue import QueueClient, TextBase64EncodePolicy
from pydantic import BaseModel

from handoff.adapters.identity import make_credential
from handoff.domain.audit import audit_time, event_hash
from handoff.domain.errors import FieldError, PayloadTooLarge
from handoff.domain.models import AuditEvent
from handoff.domain.records import (
    HandoffRecord,
    HandoffState,
    LinkRecord,
    StoredHandback,
    StoredRequest,
    has_pending_work,
)
from handoff.domain.redaction import redact_json
from handoff.ports import StorageUnavailable
from handoff.settings import (
    AUDIT_TABLE,
    DELIVERY_POISON_QUEUE,
    DELIVERY_QUEUE,
    HANDOFF_TABLE,
    LINK_TABLE,
    STORAGE_QUEUES,
    STORAGE_TABLES,
    Settings,
)

CHUNK_CHARS = 16_000  # 16k UTF-16 units at most 64 KiB: the Table property limit
MAX_DETAIL_CHARS = 16_000
# An entity holds at most 1 MiB; leave room for the keys and the other properties of the row.
MAX_DOC_BYTES = 1_000_000
MAX_OCC_RETRIES = 50
# The broker's own secrets (keys of ids): a partition no handoff id can have, never listed by the API.
SECRET_PARTITION = "~broker"  # noqa: S105 - a partition name, not a secret
ModelT = TypeVar("ModelT", bound=BaseModel)
_KEY_UNSAFE = re.compile(r"[%/\\#?\x00-\x1f\x7f-\x9f]")


def encode_key(value: str) -> str:
    """Percent-encode the characters Table Storage forbids in keys (and ``%`` itself)."""
    return _KEY_UNSAFE.sub(lambda m: f"%{ord(m.group()):02X}", value)


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
    return getattr(exc, "error_code", None) == "EntityAlreadyExists"


def _document(doc: BaseModel, what: str) -> str:
    """``doc`` as stored JSON, refused (413) when the entity could not hold it: Table Storage counts
    strings in UTF-16 and caps an entity at 1 MiB, and a body can grow when stored (``1e15`` is kept as
    ``1000000000000000.0``), so the check is on the stored form, not the request's bytes."""
    text = doc.model_dump_json()
    size = len(text.encode("utf-16-le"))
    if size > MAX_DOC_BYTES:
        raise PayloadTooLarge(
            f"the {what} would take {size} bytes of table storage as stored (UTF-16); the limit is "
            f"{MAX_DOC_BYTES} bytes",
            errors=[FieldError(field="/", message=f"larger than {MAX_DOC_BYTES} bytes as stored")],
        )
    return text


def _chunks(text: str) -> dict[str, str]:
    parts = [text[i : i + CHUNK_CHARS] for i in range(0, len(text), CHUNK_CHARS)] or [""]
    return {f"Doc{index}": part for index, part in enumerate(parts)}


def _doc(entity: dict[str, Any]) -> str:
    parts = []
    index = 0
    while f"Doc{index}" in entity:
        parts.append(entity[f"Doc{index}"])
        index += 1
    return "".join(parts)


def _load(model: type[ModelT], entity: dict[str, Any]) -> ModelT:
    return model.model_validate_json(_doc(entity))


class KeyedLocks:
    """One lock per key (created on demand, dropped when unused): in-process turn-taking for writers of
    one row, so optimistic concurrency in storage only has to settle races between processes."""

    def __init__(self) -> None:
        self._guard = threading.Lock()
        self._locks: dict[str, tuple[threading.Lock, int]] = {}

    @contextlib.contextmanager
    def hold(self, key: str) -> Iterator[None]:
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
            {"retry_total": 0, "connection_timeout": 2, "read_timeout": 2}
            if fast
            else {"retry_total": 3, "retry_backoff_factor": 0.4, "connection_timeout": 5, "read_timeout": 20}
        )
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
        return self.tables.get_table_client(name)

    def queue(self, name: str) -> QueueClient:
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


class TableHandoffStore:
    """Implements :class:`handoff.domain.records.HandoffStore` on Azure Table Storage."""

    def __init__(self, clients: StorageClients, probe: StorageClients | None = None) -> None:
        self.handoffs = clients.table(HANDOFF_TABLE)
        self.audit = clients.table(AUDIT_TABLE)
        self.links = clients.table(LINK_TABLE)
        self._probe = (probe or clients).table(HANDOFF_TABLE)
        self._audit_rows = KeyedLocks()
        # Per handoff: the next sequence number this process expects and the hash it chains to.
        self._audit_next: dict[str, tuple[int, str | None]] = {}

    def create(self, stored: StoredRequest, state: HandoffState) -> bool:
        request_entity = {
            "PartitionKey": stored.id,
            "RowKey": "request",
            "SourceAgent": stored.source_agent,
            "TargetAgent": stored.target_agent,
            "RootId": stored.root_id,
            "CreatedAt": stored.created_at,
            **_chunks(_document(stored, "handoff request")),
        }
        operations = [("create", request_entity), ("create", self._state_entity(stored.id, state))]
        with storage_errors():
            try:
                self.handoffs.submit_transaction(operations)
            except TableTransactionError as exc:
                if already_exists(exc):
                    return False
                raise
        return True

    @staticmethod
    def _state_entity(handoff_id: str, state: HandoffState) -> dict[str, Any]:
        return {
            "PartitionKey": handoff_id,
            "RowKey": "state",
            "Status": state.status,
            "UpdatedAt": state.updated_at,
            # Filtered on by the sweeper: work is left while the handoff is undelivered, its cross-link
            # or a hand-back waits to be posted.
            "PendingWork": has_pending_work(state),
            **_chunks(state.model_dump_json()),
        }

    def get(self, handoff_id: str) -> HandoffRecord | None:
        with storage_errors():
            entities = list(
                self.handoffs.query_entities("PartitionKey eq @pk", parameters={"pk": handoff_id})
            )
        by_key = {entity["RowKey"]: entity for entity in entities}
        if "request" not in by_key or "state" not in by_key:
            return None
        handbacks = sorted(
            (_load(StoredHandback, e) for key, e in by_key.items() if key.startswith("handback-")),
            key=lambda hb: hb.seq,
        )
        return HandoffRecord(
            stored=_load(StoredRequest, by_key["request"]),
            state=_load(HandoffState, by_key["state"]),
            handbacks=handbacks,
        )

    def update_state(self, handoff_id: str, mutate: Callable[[HandoffState], None]) -> HandoffState:
        for attempt in range(MAX_OCC_RETRIES):
            with storage_errors():
                entity = self.handoffs.get_entity(handoff_id, "state")
            state = _load(HandoffState, entity)
            mutate(state)
            try:
                with storage_errors():
                    self.handoffs.update_entity(
                        self._state_entity(handoff_id, state),
                        mode=UpdateMode.REPLACE,
                        etag=entity.metadata["etag"],
                        match_condition=MatchConditions.IfNotModified,
                    )
            except ResourceModifiedError:
                time.sleep(min(0.5, 0.01 * (attempt + 1)))  # a concurrent writer won; re-read and re-apply
                continue
            return state
        raise StorageUnavailable(
            f"state of {handoff_id} kept changing; gave up after {MAX_OCC_RETRIES} tries"
        )

    def add_handback(
        self, handoff_id: str, make: Callable[[int], StoredHandback], claim: str | None = None
    ) -> tuple[StoredHandback, bool]:
        claim_key = f"handbackclaim-{claim}" if claim else None
        while True:
            with storage_errors():
                existing = self.handoffs.query_entities(
                    "PartitionKey eq @pk and RowKey ge 'handback-' and RowKey lt 'handback.'",
                    parameters={"pk": handoff_id},
                    select=["RowKey"],
                )
                seq = 1 + max((int(e["RowKey"].split("-")[1]) for e in existing), default=0)
            handback = make(seq)
            entity = {
                "PartitionKey": handoff_id,
                "RowKey": f"handback-{seq:05d}",
                **_chunks(_document(handback, "hand-back")),
            }
            operations: list[tuple[str, dict[str, Any]]] = [("create", entity)]
            if claim_key:
                operations.append(("create", {"PartitionKey": handoff_id, "RowKey": claim_key, "Seq": seq}))
            try:
                with storage_errors():
                    self.handoffs.submit_transaction(operations)
            except TableTransactionError as exc:
                if not already_exists(exc):
                    raise
                if claim_key:
                    held = self._claimed(handoff_id, claim_key)
                    if held is not None:
                        return held, False
                continue  # a concurrent hand-back took this number
            return handback, True

    def _claimed(self, handoff_id: str, claim_key: str) -> StoredHandback | None:
        with storage_errors():
            try:
                claim = self.handoffs.get_entity(handoff_id, claim_key)
            except ResourceNotFoundError:
                return None
            return _load(StoredHandback, self.handoffs.get_entity(handoff_id, f"handback-{claim['Seq']:05d}"))

    def append_audit(self, handoff_id: str, type: str, actor: str, details: dict[str, Any]) -> AuditEvent:
        # The service redacts what it audits; this is the last line for any text that reaches here.
        detail_json = json.dumps(redact_json(details)[0], ensure_ascii=False, default=str)
        if len(detail_json) > MAX_DETAIL_CHARS:
            detail_json = json.dumps({"truncated": True, "preview": detail_json[:1000]})
        # Writers of one handoff in this process take turns and start from the number they expect, so a
        # burst of events (an alert storm) does not re-read the partition for every collision; other
        # processes are still kept apart by insert-if-absent.
        with self._audit_rows.hold(handoff_id):
            event = self._append_audit(handoff_id, type, actor, detail_json)
        if len(self._audit_next) > 10_000:
            self._audit_next.clear()
        return event

    def _append_audit(self, handoff_id: str, type: str, actor: str, detail_json: str) -> AuditEvent:
        details = json.loads(detail_json)
        tail = self._audit_next.get(handoff_id)
        while True:
            if tail is None:
                tail = self._audit_tail(handoff_id)
            seq, prev_hash = tail
            at = audit_time(datetime.now(UTC))
            digest = event_hash(handoff_id, seq, at, type, actor, details, prev_hash)
            entity = {
                "PartitionKey": handoff_id,
                "RowKey": f"{seq:010d}",
                "Type": type,
                "Actor": actor,
                "At": at,
                "Details": detail_json,
                "Hash": digest,
                **({"PrevHash": prev_hash} if prev_hash else {}),
            }
            try:
                with storage_errors():
                    self.audit.create_entity(entity)
            except ResourceExistsError:
                tail = None  # another writer took this sequence number; read the latest and take the next
                continue
            self._audit_next[handoff_id] = (seq + 1, digest)
            return AuditEvent(
                seq=seq, at=at, type=type, actor=actor, details=details, hash=digest, prev_hash=prev_hash
            )

    def _audit_tail(self, handoff_id: str) -> tuple[int, str | None]:
        """The next sequence number of the handoff's audit and the hash it must chain to."""
        with storage_errors():
            rows = list(
                self.audit.query_entities(
                    "PartitionKey eq @pk", parameters={"pk": handoff_id}, select=["RowKey", "Hash"]
                )
            )
        if not rows:
            return 1, None
        last = max(rows, key=lambda e: e["RowKey"])
        return int(last["RowKey"]) + 1, last.get("Hash")

    def list_audit(self, handoff_id: str, after: int = 0, limit: int | None = None) -> list[AuditEvent]:
        query = "PartitionKey eq @pk" + (" and RowKey gt @after" if after else "")
        parameters = {"pk": handoff_id, "after": f"{after:010d}"}
        events: list[AuditEvent] = []
        with storage_errors():
            # Rows come back in RowKey order (zero-padded sequence numbers) within the partition.
            for e in self.audit.query_entities(query, parameters=parameters, results_per_page=limit or 1000):
                events.append(
                    AuditEvent(
                        seq=int(e["RowKey"]),
                        at=e["At"],
                        type=e["Type"],
                        actor=e["Actor"],
                        details=json.loads(e["Details"]),
                        hash=e.get("Hash"),
                        prev_hash=e.get("PrevHash"),
                    )
                )
                if limit is not None and len(events) >= limit:
                    break
        return events

    def add_links(self, links: list[LinkRecord]) -> None:
        with storage_errors():
            for link in links:
                self.links.upsert_entity(
                    {
                        "PartitionKey": f"{link.agent}|{encode_key(link.thread_id)}",
                        "RowKey": f"{link.handoff_id}|{link.relation}",
                        "Doc0": link.model_dump_json(),
                    }
                )

    def links_of(self, agent: str, thread_id: str) -> list[LinkRecord]:
        with storage_errors():
            rows = self.links.query_entities(
                "PartitionKey eq @pk", parameters={"pk": f"{agent}|{encode_key(thread_id)}"}
            )
            return [LinkRecord.model_validate_json(row["Doc0"]) for row in rows]

    def stale_pending(self, older_than: datetime) -> list[str]:
        with storage_errors():
            rows = self.handoffs.query_entities(
                "RowKey eq 'state' and PendingWork eq true and UpdatedAt lt @cutoff",
                parameters={"cutoff": older_than},
                select=["PartitionKey"],
            )
            return [row["PartitionKey"] for row in rows]

    def ping(self) -> None:
        with storage_errors():
            next(iter(self._probe.query_entities("PartitionKey eq 'health'", results_per_page=1)), None)

    def secret(self, name: str) -> bytes:
        # Insert-if-absent, then read: every instance ends up with the one secret the first one wrote.
        entity = {"PartitionKey": SECRET_PARTITION, "RowKey": name, "Secret": secrets.token_urlsafe(32)}
        with storage_errors():
            with contextlib.suppress(ResourceExistsError):
                self.handoffs.create_entity(entity)
            stored = self.handoffs.get_entity(SECRET_PARTITION, name)
        return base64.urlsafe_b64decode(stored["Secret"] + "=" * (-len(stored["Secret"]) % 4))


class StorageQueue:
    """A work queue and its poison queue on Queue Storage (base64 text, as host.json says).
    Implements :class:`handoff.domain.records.DeliveryQueue`."""

    def __init__(self, clients: StorageClients, name: str, poison: str) -> None:
        self.queue = clients.queue(name)
        self.poison = clients.queue(poison)

    def send(self, message: dict[str, Any], delay_seconds: float = 0) -> None:
        delay = max(0, min(int(delay_seconds), 604_800))  # the service's limit: 7 days
        with storage_errors():
            self.queue.send_message(json.dumps(message), visibility_timeout=delay)

    def send_poison(self, message: dict[str, Any]) -> None:
        with storage_errors():
            self.poison.send_message(json.dumps(message))


def delivery_queue(clients: StorageClients) -> StorageQueue:
    """The queue that drives deliveries, hand-backs and follow-up work."""
    return StorageQueue(clients, DELIVERY_QUEUE, DELIVERY_POISON_QUEUE)
