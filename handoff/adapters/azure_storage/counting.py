"""Counting the storage requests the app makes, by kind (``HANDOFF_COUNT_STORAGE_TRANSACTIONS``).

Every HTTP request a Table or Queue client sends is one storage transaction; :class:`CountingPolicy`
classifies each one (table insert, point read, query, update, delete, batch, queue send, receive,
delete message, other) and adds it to a process-wide :class:`TransactionCounts`. The benchmark
(``bench/``) reads the counts in-process to report transactions per handoff.

A count can carry a label (:meth:`TransactionCounts.labelled`, a context variable): the benchmark
labels each function invocation with the function's name, so the counts split by the work that made
them. Imported only when the setting is on.
"""

from __future__ import annotations

import contextlib
import re
import threading
from collections import Counter
from collections.abc import Iterator
from contextvars import ContextVar
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

from azure.core.pipeline import PipelineRequest
from azure.core.pipeline.policies import SansIOHTTPPolicy

TABLE_INSERT = "tableInsert"
POINT_READ = "pointRead"
PARTITION_QUERY = "partitionQuery"  # $filter with a PartitionKey equality: one partition is read
SCAN_QUERY = "scanQuery"  # a query without a PartitionKey equality: every partition may be read
UPDATE = "update"  # update, merge or upsert of one entity
DELETE = "delete"
BATCH = "batch"  # one entity-group transaction, however many entities it holds
QUEUE_SEND = "queueSend"
QUEUE_RECEIVE = "queueReceive"
QUEUE_DELETE = "queueDelete"
OTHER = "other"  # table and queue management, message updates, peeks
KINDS: tuple[str, ...] = (
    TABLE_INSERT,
    POINT_READ,
    PARTITION_QUERY,
    SCAN_QUERY,
    UPDATE,
    DELETE,
    BATCH,
    QUEUE_SEND,
    QUEUE_RECEIVE,
    QUEUE_DELETE,
    OTHER,
)
UNLABELLED = ""

_PARTITION_EQUALITY = re.compile(r"\bPartitionKey\s+eq\s+'", re.IGNORECASE)
_ENTITY_KEYS = re.compile(r"\(\s*PartitionKey\s*=.*RowKey\s*=.*\)$", re.IGNORECASE)
_UPDATE_METHODS = frozenset({"PUT", "MERGE", "PATCH"})


def classify(method: str, url: str) -> str:
    """The kind of storage transaction an HTTP request to the Table or Queue service is.

    Tables: ``POST /<table>`` inserts, ``GET /<table>(PartitionKey='…',RowKey='…')`` is a point read,
    ``GET /<table>()`` a query (a partition query when its ``$filter`` has a PartitionKey equality),
    ``PUT``/``MERGE``/``PATCH`` on an entity update it, ``DELETE`` on an entity deletes it, ``POST
    /$batch`` is an entity-group transaction. Queues: ``POST …/messages`` sends, ``GET …/messages``
    receives (``peekonly`` is other), ``DELETE …/messages/<id>`` deletes a message.
    """
    method = method.upper()
    parts = urlsplit(url)
    segments = [unquote(s) for s in parts.path.split("/") if s]
    last = segments[-1] if segments else ""
    query = parse_qs(parts.query)
    if last == "$batch":
        return BATCH if method == "POST" else OTHER
    if last == "messages" or (len(segments) >= 2 and segments[-2] == "messages"):
        return _queue_kind(method, last == "messages", query)
    if last.startswith("Tables") or "(" not in last:
        # POST /Tables creates a table; POST /<table> inserts an entity; the rest manage the service.
        return TABLE_INSERT if method == "POST" and not last.startswith("Tables") and last else OTHER
    if _ENTITY_KEYS.search(last):
        if method == "GET":
            return POINT_READ
        if method in _UPDATE_METHODS:
            return UPDATE
        return DELETE if method == "DELETE" else OTHER
    if method == "GET":
        filters = " ".join(query.get("$filter", []))
        return PARTITION_QUERY if _PARTITION_EQUALITY.search(filters) else SCAN_QUERY
    return OTHER


def _queue_kind(method: str, collection: bool, query: dict[str, list[str]]) -> str:
    if collection and method == "POST":
        return QUEUE_SEND
    if collection and method == "GET":
        return OTHER if query.get("peekonly", [""])[0].lower() == "true" else QUEUE_RECEIVE
    if not collection and method == "DELETE":
        return QUEUE_DELETE
    return OTHER


class TransactionCounts:
    """Thread-safe counts of storage transactions by label and kind."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._counts: Counter[tuple[str, str]] = Counter()
        self._label: ContextVar[str] = ContextVar(f"storage-count-label-{id(self)}", default=UNLABELLED)
        self._trace: list[tuple[str, str, str]] | None = None

    def add(self, kind: str, count: int = 1, request: str = "") -> None:
        """Count ``count`` transactions of ``kind`` under the current label (and trace ``request``)."""
        key = (self._label.get(), kind)
        with self._lock:
            self._counts[key] += count
            if self._trace is not None:
                self._trace.append((key[0], kind, request))

    def start_trace(self) -> None:
        """Also keep each request (label, kind, method and URL) in order, until :meth:`stop_trace`."""
        with self._lock:
            self._trace = []

    def stop_trace(self) -> list[tuple[str, str, str]]:
        """The requests since :meth:`start_trace`: ``(label, kind, "METHOD url")``; stops tracing."""
        with self._lock:
            trace, self._trace = self._trace or [], None
        return trace

    @contextlib.contextmanager
    def labelled(self, label: str) -> Iterator[None]:
        """Count what runs inside under ``label`` (follows the context into awaited code)."""
        token = self._label.set(label)
        try:
            yield
        finally:
            self._label.reset(token)

    def snapshot(self) -> dict[str, int]:
        """The counts so far by kind, whatever their label: ``{kind: count}`` (a copy)."""
        totals: Counter[str] = Counter()
        for kinds in self.by_label().values():
            totals.update(kinds)
        return dict(totals)

    def by_label(self) -> dict[str, dict[str, int]]:
        """The counts so far by label and kind: ``{label: {kind: count}}`` (a copy)."""
        with self._lock:
            items = list(self._counts.items())
        result: dict[str, dict[str, int]] = {}
        for (label, kind), count in items:
            result.setdefault(label, {})[kind] = count
        return result

    def reset(self) -> None:
        """Forget every count."""
        with self._lock:
            self._counts.clear()


COUNTS = TransactionCounts()


class CountingPolicy(SansIOHTTPPolicy[Any, Any]):
    """Counts each request the pipeline sends (after its retry policy: every attempt is counted)."""

    def __init__(self, counts: TransactionCounts = COUNTS) -> None:
        self.counts = counts

    def on_request(self, request: PipelineRequest[Any]) -> None:
        """Classify and count the request."""
        http_request = request.http_request
        method, url = http_request.method, http_request.url
        self.counts.add(classify(method, url), request=f"{method} {url}")


def client_options(counts: TransactionCounts = COUNTS) -> dict[str, Any]:
    """Keyword arguments that make a Table or Queue client run :class:`CountingPolicy` on each request.

    Neither SDK takes ``per_call_policies`` everywhere (``TableServiceClient.get_table_client`` builds
    its pipeline from the service's own policy list, ``QueueClient`` from a fixed one), but both run
    the standard ``raw_request_hook`` on every attempt, so the policy is attached through it.
    """
    return {"raw_request_hook": CountingPolicy(counts).on_request}
