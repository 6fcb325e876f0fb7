"""Reading handoffs: one handoff, its audit, the threads linked to a thread, the history, and health.

Every read goes through :meth:`Queries.readable_record` or the authorizer: an agent sees the handoffs of
its chains, an operator sees everything, and a handoff the caller may not see answers the same 404 as one
that does not exist.
"""

from __future__ import annotations

import re
from typing import TypeGuard

from handoff.domain.audit import AuditVerification, verify_chain
from handoff.domain.auth import Caller
from handoff.domain.errors import (
    BadRequest,
    Forbidden,
    NotFound,
    ServiceUnavailable,
    Unprocessable,
    single_field,
)
from handoff.domain.history import HistoryPage, HistoryQuery
from handoff.domain.ids import is_uuid
from handoff.domain.messages import thread_url
from handoff.domain.models import (
    PATH_SEGMENT_MESSAGE,
    AuditLog,
    HandbackView,
    HandoffView,
    Health,
    ThreadEndpoint,
    ThreadLink,
    ThreadLinks,
    is_path_segment_id,
)
from handoff.domain.records import HandbackDelivery, HandoffRecord, handoff_warnings
from handoff.domain.timeline import ChainHandoff, ChainTimeline
from handoff.ports import HistorySearch, StorageLayoutMismatch
from handoff.services.context import ServiceContext

AUDIT_PAGE = 1000  # audit events per page (and the most a caller may ask for)


class Queries:
    """The read use cases of handoffs."""

    def __init__(self, ctx: ServiceContext) -> None:
        self.ctx = ctx

    # ------------------------------------------------------------------ who may see what

    def may_see(self, caller: Caller, record: HandoffRecord) -> bool:
        """Whether ``caller`` is an operator or an agent of the record's chain (the chain index is read
        only when the record's own two agents do not settle it)."""
        identity = self.ctx.authorizer.identity(caller)
        if identity.operator or identity.agents is None:
            return True
        own = {record.stored.source_agent, record.stored.target_agent}
        return identity.is_any(own) or identity.is_any(self.chain_agents(record))

    def chain_agents(self, record: HandoffRecord) -> set[str]:
        """The agents of the handoff's chain (from the chain index)."""
        agents = {record.stored.source_agent, record.stored.target_agent}
        for member in self.ctx.chains.members(record.stored.root_id):
            agents.update((member.source_agent, member.target_agent))
        return agents

    def readable_record(self, handoff_id: str, caller: Caller, action: str = "read") -> HandoffRecord:
        """The stored handoff if ``caller`` may see it: an agent of its chain or an operator. Otherwise the
        same 404 as for an id that does not exist, so existence does not leak."""
        record = self.ctx.get_record(handoff_id)
        if self.may_see(caller, record):
            return record
        raise self.ctx.authorizer.not_found(caller, action, handoff_id, f"no handoff with id '{handoff_id}'")

    # ------------------------------------------------------------------ one handoff

    def get(self, handoff_id: str, caller: Caller) -> HandoffView:
        """``GET /api/handoffs/{id}``, with the handoff's place in its chain (parent and children)."""
        record = self.readable_record(handoff_id, caller)
        return self.view(record).model_copy(update={"chain": self.ctx.chains.view(record)})

    def audit(
        self, handoff_id: str, caller: Caller, top: int = AUDIT_PAGE, continuation_token: str | None = None
    ) -> AuditLog:
        """``GET /api/handoffs/{id}/audit``: one page of events, oldest first, with a token for the next."""
        after = _audit_position(continuation_token)
        self.readable_record(handoff_id, caller, "read the audit of")
        events = self.ctx.store.list_audit(handoff_id, after, top + 1)
        more = len(events) > top
        events = events[:top]
        token = str(events[-1].seq) if more and events else None
        return AuditLog(handoff_id=handoff_id, events=events, continuation_token=token)

    def verify_audit(self, handoff_id: str, caller: Caller) -> AuditVerification:
        """``GET /api/handoffs/{id}/audit/verify``: recompute the hash chain over every stored event."""
        self.readable_record(handoff_id, caller, "verify the audit of")
        return verify_chain(handoff_id, self.ctx.store.list_audit(handoff_id))

    def timeline(self, handoff_id: str, caller: Caller) -> ChainTimeline:
        """``GET /api/handoffs/{id}/timeline``: the root and every child of the handoff's chain, oldest
        first, each with its whole audit. Every handoff of a chain has the same agents, so a caller who may
        read this one may read them all; a stored handoff of another root is left out."""
        record = self.readable_record(handoff_id, caller, "read the timeline of")
        root_id = record.stored.root_id
        members = [m.handoff_id for m in self.ctx.chains.members(root_id)]
        ids = list(dict.fromkeys([root_id, *members, record.id]))
        handoffs = []
        for member_id in ids:
            member = record if member_id == record.id else self.ctx.store.get(member_id)
            if member is not None and member.stored.root_id == root_id:
                handoffs.append(ChainHandoff.of(member, self.ctx.store.list_audit(member_id)))
        handoffs.sort(key=lambda h: (h.id != root_id, h.created_at, h.id))
        return ChainTimeline(handoff_id=record.id, root_id=root_id, handoffs=tuple(handoffs))

    def view(self, record: HandoffRecord) -> HandoffView:
        """The public view of a stored handoff."""
        stored, state = record.stored, record.state
        source = self.ctx.registry.find(stored.source_agent)
        target = self.ctx.registry.find(stored.target_agent)
        source_thread = stored.request.source.thread_id
        base = f"{self.ctx.settings.base_url}/api/handoffs/{stored.id}"
        links = {"self": base, "audit": f"{base}/audit", "handback": f"{base}/handback"}
        handbacks = [
            HandbackView(
                seq=hb.seq,
                received_at=hb.received_at,
                agent=hb.agent,
                thread_id=hb.request.thread_id,
                outcome=hb.request.outcome,
                summary=hb.request.summary,
                root_cause=hb.request.root_cause,
                recommended_actions=hb.request.recommended_actions,
                evidence=hb.request.evidence,
                delivery=state.handbacks.get(hb.seq, HandbackDelivery()).status,
                posted_at=state.handbacks.get(hb.seq, HandbackDelivery()).posted_at,
                automatic=hb.automatic,
            )
            for hb in record.handbacks
        ]
        return HandoffView(
            id=stored.id,
            status=state.status,
            intent=stored.request.intent,
            source=ThreadEndpoint(
                agent=stored.source_agent,
                resource_id=source.resource_id if source else None,
                thread_id=source_thread,
                thread_url=thread_url(source.resource_id if source else None, source_thread),
            ),
            target=ThreadEndpoint(
                agent=stored.target_agent,
                resource_id=target.resource_id if target else None,
                thread_id=state.target_thread_id,
                thread_url=thread_url(target.resource_id if target else None, state.target_thread_id),
                task_id=state.remote_task_id,
            ),
            context=stored.request.context,
            parent_handoff_id=stored.request.parent_handoff_id,
            root_handoff_id=stored.root_id,
            correlation_id=stored.request.correlation_id,
            created_at=stored.created_at,
            updated_at=state.updated_at,
            delivered_at=state.delivered_at,
            handed_back_at=state.handed_back_at,
            attempts=state.attempts,
            last_error=state.last_error,
            handbacks=handbacks,
            links=links,
            depth=stored.depth,
            warnings=handoff_warnings(state),
        )

    # ------------------------------------------------------------------ links, history, health

    def thread_links(self, agent_ref: str, thread_id: str, caller: Caller) -> ThreadLinks:
        """Every thread linked to this one, following chains in both directions (for the agent that owns
        the thread, or an operator)."""
        if not is_path_segment_id(thread_id):
            raise single_field(Unprocessable, "threadId", PATH_SEGMENT_MESSAGE)
        agent = self.ctx.registry.find(agent_ref)
        if agent is None:
            raise single_field(NotFound, "agent", f"'{agent_ref}' is not a registered agent")
        authorizer = self.ctx.authorizer
        if not authorizer.may_read(caller, {agent.name}):
            raise authorizer.refuse(
                caller,
                "read thread links of",
                agent.name,
                Forbidden(
                    f"caller {caller.describe()} may not read the links of agent '{agent.name}' threads"
                ),
            )
        identity = authorizer.identity(caller)
        sees_all = identity.operator or identity.agents is None
        visible: dict[str, bool] = {}

        def may_follow(handoff_id: str) -> bool:
            # A thread can take part in several chains; follow only the handoffs the caller may read.
            if sees_all:
                return True
            if handoff_id not in visible:
                record = self.ctx.store.get(handoff_id) if is_uuid(handoff_id) else None
                visible[handoff_id] = record is not None and self.may_see(caller, record)
            return visible[handoff_id]

        start = (agent.name, thread_id)
        seen = {start}
        frontier = [start]
        edges: dict[str, ThreadLink] = {}  # one edge per handoff, seen from the side reached first
        hops = 0
        while frontier:
            hops += 1
            next_frontier = []
            for node in frontier:
                for link in self.ctx.store.links_of(*node):
                    if not may_follow(link.handoff_id):
                        continue
                    if link.handoff_id not in edges:
                        edges[link.handoff_id] = ThreadLink(
                            handoff_id=link.handoff_id,
                            relation=link.relation,
                            thread=self._endpoint(link.agent, link.thread_id),
                            peer=self._endpoint(link.peer_agent, link.peer_thread_id),
                            hops=hops,
                        )
                    peer = (link.peer_agent, link.peer_thread_id)
                    if peer not in seen:
                        seen.add(peer)
                        next_frontier.append(peer)
            frontier = next_frontier
        ordered = sorted(edges.values(), key=lambda e: (e.hops, e.handoff_id, e.relation))
        return ThreadLinks(agent=agent.name, thread_id=thread_id, links=ordered)

    def _endpoint(self, agent_name: str, thread_id: str) -> ThreadEndpoint:
        agent = self.ctx.registry.find(agent_name)
        resource_id = agent.resource_id if agent else None
        return ThreadEndpoint(
            agent=agent_name,
            resource_id=resource_id,
            thread_id=thread_id,
            thread_url=thread_url(resource_id, thread_id),
        )

    def search_history(self, query: HistoryQuery, caller: Caller) -> HistoryPage:
        """``GET /api/history``: earlier investigations the caller's agents took part in (all of them for an
        operator)."""
        history = self.ctx.history
        if not _searchable(history):
            raise ServiceUnavailable("the history index is not configured")
        identity = self.ctx.authorizer.identity(caller)
        agents = None if identity.operator or identity.agents is None else identity.agents
        return history.search(query, agents)

    def health(self) -> Health:
        """Whether storage answers (fast; the adapter uses short timeouts and no retries)."""
        try:
            self.ctx.store.ping()
        except StorageLayoutMismatch as exc:
            return Health(status="unhealthy", storage="reachable", detail=str(exc))
        except Exception as exc:
            return Health(status="unhealthy", storage="unreachable", detail=type(exc).__name__)
        return Health(status="healthy", storage="reachable")


def _audit_position(token: str | None) -> int:
    """The sequence number a continuation token of the audit continues after (400 when it is not one)."""
    if token is None:
        return 0
    if not re.fullmatch(r"[0-9]{1,10}", token):
        raise single_field(BadRequest, "continuationToken", "not a token this API issued")
    return int(token)


def _searchable(index: object) -> TypeGuard[HistorySearch]:
    """Whether the history index can also be searched (the table adapter can; a bare index cannot)."""
    return callable(getattr(index, "search", None))
