"""The history index on Table Storage (table ``handoffhistory``).

Partition key ``s|<scope>`` (a lowercased resource ID or ancestor scope, percent-encoded; keyed by its
SHA-256 when too long for a key: :func:`~handoff.adapters.azure_storage.clients.fitting_key`) or
``all``; row key
``<inverted epoch ms>|<handoff id>|<hand-back seq>`` so a partition reads newest first. Entries are
upserted, so indexing the same hand-back again changes nothing.

"Seen before" (the earlier investigations a start message shows) reads each scope's newest rows at most
once per :data:`SEEN_BEFORE_SECONDS` in a process, and the human notes of what it shows likewise, so a
burst of handoffs on one resource (an alert storm) reads them once; this process's own index writes
make it read again.
"""

from __future__ import annotations

import functools
import json
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from typing import Any, TypeVar

from handoff.adapters.azure_storage.clients import (
    KEY_CHARS,
    StorageClients,
    encode_key,
    fitting_key,
    storage_errors,
)
from handoff.domain.history import (
    ALL_PARTITION,
    HistoryItem,
    HistoryPage,
    HistoryQuery,
    HumanNote,
    decode_token,
    encode_token,
    matches_text,
    resource_group_of,
)
from handoff.domain.history_rows import history_item, history_row, row_thread_urls, since_key, time_key
from handoff.domain.records import HandoffRecord, StoredHandback
from handoff.domain.registry import Registry
from handoff.settings import HISTORY_TABLE

SCAN_BUDGET = 5000
SEEN_BEFORE_SECONDS = 30.0
SEEN_BEFORE_ROWS = 200  # newest rows of a scope "Seen before" looks through
T = TypeVar("T")


def _pk(scope: str) -> str:
    return ALL_PARTITION if scope == ALL_PARTITION else fitting_key("s|", scope)


class RecentReads:
    """Reads kept for ``seconds`` (at most ``capacity`` of them, the oldest dropped first)."""

    def __init__(self, seconds: float = SEEN_BEFORE_SECONDS, capacity: int = 1024) -> None:
        self.seconds = seconds
        self.capacity = capacity
        self._lock = threading.Lock()
        self._kept: OrderedDict[str, tuple[float, Any]] = OrderedDict()

    def read(self, key: str, read: Callable[[], T]) -> T:
        """What ``read()`` gave for ``key`` less than ``seconds`` ago, else what it gives now."""
        now = time.monotonic()
        with self._lock:
            kept = self._kept.get(key)
            if kept is not None and now - kept[0] < self.seconds:
                value: T = kept[1]
                return value
        value = read()
        with self._lock:
            self._kept[key] = (now, value)
            self._kept.move_to_end(key)
            while len(self._kept) > self.capacity:
                self._kept.popitem(last=False)
        return value

    def forget(self, keys: list[str]) -> None:
        """Read these again next time (they were just written)."""
        with self._lock:
            for key in keys:
                self._kept.pop(key, None)


class TableHistoryIndex:
    """Implements the ``HistoryIndex`` and ``HistorySearch`` ports."""

    def __init__(self, clients: StorageClients, registry: Registry) -> None:
        self.table = clients.table(HISTORY_TABLE)
        self.registry = registry
        self._reads = RecentReads()

    # -------------------------------------------------------------- writing

    def index_handback(
        self, record: HandoffRecord, handback: StoredHandback, alert_rule: str | None = None
    ) -> None:
        urls = row_thread_urls(record, self.registry)
        row_key, columns, scopes = history_row(record, handback, urls, alert_rule)
        with storage_errors():
            for scope in sorted(scopes):
                self.table.upsert_entity({**columns, "RowKey": row_key, "PartitionKey": _pk(scope)})
        self._reads.forget([_pk(scope) for scope in scopes])

    # -------------------------------------------------------------- reading

    def add_human_note(self, handoff_id: str, note: dict[str, Any]) -> None:
        """Keep a human entry with its investigation (partition ``h|<handoff id>``, never searched
        itself: it is attached to the investigation's items)."""
        row = f"{note['at']}|{note['backend']}|{note['entryId']}"
        entity = {
            "PartitionKey": f"h|{handoff_id}",
            "RowKey": encode_key(row)[:KEY_CHARS],
            "Note": json.dumps(note, ensure_ascii=False)[:30000],
        }
        with storage_errors():
            self.table.upsert_entity(entity)
        self._reads.forget([f"h|{handoff_id}"])

    def human_notes(self, handoff_id: str) -> list[HumanNote]:
        """The human entries of one investigation, oldest first."""
        notes = []
        with storage_errors():
            for entity in self.table.query_entities(
                "PartitionKey eq @pk", parameters={"pk": f"h|{handoff_id}"}, results_per_page=100
            ):
                try:
                    notes.append(HumanNote.model_validate(json.loads(entity["Note"])))
                except ValueError:
                    continue
                if len(notes) >= 100:
                    break
        return notes

    def search(self, query: HistoryQuery, agents: frozenset[str] | None = None) -> HistoryPage:
        page = self._search(query, agents)
        for item in page.items:
            item.human_notes = self.human_notes(item.handoff_id)
        return page

    def _search(self, query: HistoryQuery, agents: frozenset[str] | None = None) -> HistoryPage:
        if agents is not None and not agents:
            return HistoryPage(items=[])
        clauses = ["PartitionKey eq @pk"]
        params: dict[str, Any] = {"pk": _pk(query.partition_scope)}
        if query.continuation_token:
            clauses.append("RowKey gt @after")
            params["after"] = decode_token(query.continuation_token)
        if query.since:
            clauses.append("RowKey lt @sinceKey")
            params["sinceKey"] = since_key(query.since)
        if query.until:
            clauses.append("RowKey ge @untilKey")
            params["untilKey"] = time_key(query.until)
        if query.outcome:
            clauses.append("Outcome eq @outcome")
            params["outcome"] = query.outcome
        if query.alert_rule:
            clauses.append("AlertRuleKey eq @rule")
            params["rule"] = query.alert_rule.strip().lower()
        if query.agent:
            agent = self.registry.find(query.agent)
            params["agent"] = (agent.name if agent else query.agent.strip()).lower()
            clauses.append("( SourceKey eq @agent or TargetKey eq @agent )")
        if agents is not None:
            # Only investigations the caller's agents took part in (filtered by storage, so pages stay full).
            names = sorted(name.lower() for name in agents)
            params.update({f"seen{index}": name for index, name in enumerate(names)})
            either = " or ".join(
                f"SourceKey eq @seen{index} or TargetKey eq @seen{index}" for index in range(len(names))
            )
            clauses.append(f"( {either} )")
        items: list[HistoryItem] = []
        last_key = None
        scanned = 0
        with storage_errors():
            for entity in self.table.query_entities(
                " and ".join(clauses), parameters=params, results_per_page=200
            ):
                scanned += 1
                if matches_text(_text_view(entity), query.q):
                    if len(items) == query.top:
                        return HistoryPage(items=items, continuation_token=encode_token(last_key or ""))
                    items.append(history_item(entity))
                    last_key = entity["RowKey"]
                if scanned >= SCAN_BUDGET:
                    # Bound one request's work; the token continues after the last row read.
                    return HistoryPage(items=items, continuation_token=encode_token(entity["RowKey"]))
        return HistoryPage(items=items)

    def recent_for_resources(
        self, resources: list[str], exclude_root: str, limit: int, agents: frozenset[str] | None = None
    ) -> list[dict[str, Any]]:
        seen_by = None if agents is None else {agent.lower() for agent in agents}
        found = self._recent([r.strip().rstrip("/").lower() for r in resources], exclude_root, limit, seen_by)
        if found:
            return found
        groups = sorted({g for g in (resource_group_of(r) for r in resources) if g})
        return self._recent(groups, exclude_root, limit, seen_by)

    def _recent(
        self, scopes: list[str], exclude_root: str, limit: int, agents: set[str] | None
    ) -> list[dict[str, Any]]:
        rows: dict[str, dict[str, Any]] = {}
        for scope in list(dict.fromkeys(scopes))[:20]:
            for entity in self._reads.read(_pk(scope), functools.partial(self._newest, scope)):
                if entity["RootId"] == exclude_root:
                    continue
                if agents is not None and not {entity.get("SourceKey"), entity.get("TargetKey")} & agents:
                    continue  # an investigation neither agent of this handoff took part in
                # Newest hand-back per handoff; row keys sort newest first.
                current = rows.get(entity["HandoffId"])
                if current is None or entity["RowKey"] < current["RowKey"]:
                    rows[entity["HandoffId"]] = entity
                if len(rows) >= limit * 4:
                    break
        newest = sorted(rows.values(), key=lambda e: e["RowKey"])[:limit]
        return [self._seen_item(e) for e in newest]

    def _newest(self, scope: str) -> list[dict[str, Any]]:
        """The newest :data:`SEEN_BEFORE_ROWS` rows of a scope (one query)."""
        with storage_errors():
            query = self.table.query_entities(
                "PartitionKey eq @pk", parameters={"pk": _pk(scope)}, results_per_page=SEEN_BEFORE_ROWS
            )
            return [dict(entity) for _, entity in zip(range(SEEN_BEFORE_ROWS), query, strict=False)]

    def _seen_item(self, entity: dict[str, Any]) -> dict[str, Any]:
        """One earlier investigation for a start message's "Seen before", with its human notes."""
        item = history_item(entity)
        handoff_id = item.handoff_id
        item.human_notes = self._reads.read(f"h|{handoff_id}", lambda: self.human_notes(handoff_id))
        return {**item.to_wire(), "summary": entity.get("Summary") or None}


def _text_view(entity: dict[str, Any]) -> dict[str, Any]:
    return {
        "title": entity.get("Title"),
        "summary": entity.get("Summary"),
        "rootCause": entity.get("RootCause"),
    }
