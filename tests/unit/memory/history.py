"""The history ports (:class:`~handoff.ports.HistoryIndex`, :class:`~handoff.ports.HistorySearch`,
:class:`~handoff.ports.HumanNotesIndex`) in memory, with the layout of the Table adapter
(``handoff/adapters/azure_storage/history.py``): one entry per scope of each resource plus one in the
``all`` partition, row keys ``<inverted epoch ms>|<handoff id>|<seq>`` so a partition reads newest
first, upserts (indexing a hand-back again changes nothing), the same filters and continuation tokens.
"""

from __future__ import annotations

import json
from typing import Any

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
from tests.unit.memory.faults import StorageFaults


class MemoryHistoryIndex:
    """Implements the history index and search ports in memory."""

    def __init__(self, registry: Registry) -> None:
        self.registry = registry
        self.faults = StorageFaults()
        self._partitions: dict[str, dict[str, dict[str, Any]]] = {}
        self._notes: dict[str, dict[str, dict[str, Any]]] = {}

    # ---------------------------------------------------------------- writing

    def index_handback(
        self, record: HandoffRecord, handback: StoredHandback, alert_rule: str | None = None
    ) -> None:
        self.faults.check("index_handback")
        urls = row_thread_urls(record, self.registry)
        row_key, columns, scopes = history_row(record, handback, urls, alert_rule)
        for scope in scopes:
            self._partitions.setdefault(scope, {})[row_key] = {**columns, "RowKey": row_key}

    def add_human_note(self, handoff_id: str, note: dict[str, Any]) -> None:
        self.faults.check("add_human_note")
        row = f"{note['at']}|{note['backend']}|{note['entryId']}"
        self._notes.setdefault(handoff_id, {})[row] = json.loads(json.dumps(note))

    # ---------------------------------------------------------------- reading

    def search(self, query: HistoryQuery, agents: frozenset[str] | None = None) -> HistoryPage:
        self.faults.check("search")
        page = self._search(query, agents)
        for item in page.items:
            notes = self._notes.get(item.handoff_id, {})
            item.human_notes = [HumanNote.model_validate(notes[key]) for key in sorted(notes)][:100]
        return page

    def _matches(self, entity: dict[str, Any], query: HistoryQuery, agents: frozenset[str] | None) -> bool:
        key = entity["RowKey"]
        if query.continuation_token and not key > decode_token(query.continuation_token):
            return False
        if query.since and not key < since_key(query.since):
            return False
        if query.until and not key >= time_key(query.until):
            return False
        if query.outcome and entity["Outcome"] != query.outcome:
            return False
        if query.alert_rule and entity["AlertRuleKey"] != query.alert_rule.strip().lower():
            return False
        parties = {entity["SourceKey"], entity["TargetKey"]}
        if query.agent:
            agent = self.registry.find(query.agent)
            if (agent.name if agent else query.agent.strip()).lower() not in parties:
                return False
        if agents is not None and not parties & {name.lower() for name in agents}:
            return False
        return matches_text(
            {"title": entity["Title"], "summary": entity["Summary"], "rootCause": entity["RootCause"]},
            query.q,
        )

    def _search(self, query: HistoryQuery, agents: frozenset[str] | None) -> HistoryPage:
        if agents is not None and not agents:
            return HistoryPage(items=[])
        partition = self._partitions.get(query.partition_scope, {})
        items: list[HistoryItem] = []
        last_key = None
        for key in sorted(partition):
            entity = partition[key]
            if not self._matches(entity, query, agents):
                continue
            if len(items) == query.top:
                return HistoryPage(items=items, continuation_token=encode_token(last_key or ""))
            items.append(history_item(entity))
            last_key = key
        return HistoryPage(items=items)

    def recent_for_resources(
        self, resources: list[str], exclude_root: str, limit: int, agents: frozenset[str] | None = None
    ) -> list[dict[str, Any]]:
        self.faults.check("recent_for_resources")
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
        for scope in scopes[:20]:
            partition = self._partitions.get(scope, {})
            for key in sorted(partition):
                entity = partition[key]
                if entity["RootId"] == exclude_root:
                    continue
                if agents is not None and not {entity["SourceKey"], entity["TargetKey"]} & agents:
                    continue
                current = rows.get(entity["HandoffId"])
                if current is None or key < current["RowKey"]:
                    rows[entity["HandoffId"]] = entity
        newest = sorted(rows.values(), key=lambda e: e["RowKey"])[:limit]
        return [{**history_item(e).to_wire(), "summary": e.get("Summary") or None} for e in newest]

    # ---------------------------------------------------------------- behind the port (tests only)

    def entries(self, scope: str = ALL_PARTITION) -> list[dict[str, Any]]:
        """The entries of one partition, newest first."""
        partition = self._partitions.get(scope, {})
        return [dict(partition[key]) for key in sorted(partition)]
