"""The history ports (:class:`~handoff.ports.HistoryIndex`, :class:`~handoff.ports.HistorySearch`,
:class:`~handoff.ports.HumanNotesIndex`) in memory, with the layout of the Table adapter
(``handoff/adapters/azure_storage/history.py``): one entry per scope of each resource plus one in the
``all`` partition, row keys ``<inverted epoch ms>|<handoff id>|<seq>`` so a partition reads newest
first, upserts (indexing a hand-back again changes nothing), the same filters and continuation tokens.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from handoff.domain.history import (
    ALL_PARTITION,
    HistoryItem,
    HistoryPage,
    HistoryQuery,
    HumanNote,
    as_utc,
    decode_token,
    encode_token,
    matches_text,
    resource_group_of,
    scopes_of,
)
from handoff.domain.messages import thread_url
from handoff.domain.records import HandoffRecord, StoredHandback
from handoff.domain.registry import Registry
from tests.unit.memory.faults import StorageFaults

MAX_MS = 9_999_999_999_999


def _inverted(at: datetime) -> str:
    return f"{MAX_MS - int(at.timestamp() * 1000):013d}"


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
        stored = record.stored
        context = stored.request.context
        request = handback.request
        source = self.registry.find(stored.source_agent)
        target = self.registry.find(stored.target_agent)
        urls = {
            "source": thread_url(source.resource_id if source else None, stored.request.source.thread_id),
            "target": thread_url(target.resource_id if target else None, record.state.target_thread_id),
        }
        row_key = f"{_inverted(handback.received_at)}|{stored.id}|{handback.seq:05d}"
        entity = {
            "HandoffId": stored.id,
            "RootId": stored.root_id,
            "Seq": handback.seq,
            "Title": context.title,
            "Summary": (request.summary or "")[:8000],
            "RootCause": (request.root_cause or "")[:8000],
            "Actions": json.dumps(request.recommended_actions[:20]),
            "Resources": json.dumps(context.resources),
            "Source": stored.source_agent,
            "Target": stored.target_agent,
            "SourceKey": stored.source_agent.lower(),
            "TargetKey": stored.target_agent.lower(),
            "Outcome": request.outcome,
            "AlertRule": alert_rule or "",
            "AlertRuleKey": (alert_rule or "").lower(),
            "ThreadUrls": json.dumps({k: v for k, v in urls.items() if v}),
            "HandedBackAt": handback.received_at,
        }
        scopes = {ALL_PARTITION}
        for resource in context.resources:
            scopes.update(scopes_of(resource))
        for scope in scopes:
            self._partitions.setdefault(scope, {})[row_key] = {**entity, "RowKey": row_key}

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
        if query.since and not key < f"{MAX_MS - int(as_utc(query.since).timestamp() * 1000) + 1:013d}":
            return False
        if query.until and not key >= f"{MAX_MS - int(as_utc(query.until).timestamp() * 1000):013d}":
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
            items.append(_item(entity))
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
        return [{**_item(e).to_wire(), "summary": e.get("Summary") or None} for e in newest]

    # ---------------------------------------------------------------- behind the port (tests only)

    def entries(self, scope: str = ALL_PARTITION) -> list[dict[str, Any]]:
        """The entries of one partition, newest first."""
        partition = self._partitions.get(scope, {})
        return [dict(partition[key]) for key in sorted(partition)]


def _item(entity: dict[str, Any]) -> HistoryItem:
    return HistoryItem(
        handoff_id=entity["HandoffId"],
        title=entity["Title"],
        resources=json.loads(entity["Resources"]),
        source=entity["Source"],
        target=entity["Target"],
        outcome=entity["Outcome"],
        root_cause=entity["RootCause"] or None,
        recommended_actions=json.loads(entity["Actions"]),
        thread_urls=json.loads(entity["ThreadUrls"]),
        handed_back_at=entity["HandedBackAt"],
    )
