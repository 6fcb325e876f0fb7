"""Listing handoffs, newest first, from the handoff index; and keeping that index with the state.

A new handoff's entry is inserted if absent, at the same time as its first step is queued; each state
write that changes a handoff's status is followed by one upsert of its entry (:func:`keep_indexed`),
after the write succeeded, so the index never holds a status the state does not, and an entry written
from an older read never replaces a newer status.
The upsert is idempotent; one that fails is logged and healed by the handoff's next status change or
by a retried step that finds its work already done (the worker writes the entry again then).

A listing reads only the index: one query per day partition (see :mod:`handoff.domain.listing`), with
the caller's agents as a filter of the query itself, so an agent lists only the handoffs it handed off
or received, and an operator lists all of them.
"""

from __future__ import annotations

import logging
from dataclasses import replace
from datetime import timedelta

from handoff.domain.auth import Caller
from handoff.domain.errors import ServiceUnavailable
from handoff.domain.listing import (
    DAYS_PER_PAGE,
    HandoffList,
    HandoffSummary,
    IndexFilter,
    ListQuery,
    decode_cursor,
    encode_cursor,
    since_bound,
    start_cursor,
    summary_of,
    utc_day,
)
from handoff.domain.records import HandoffRecord
from handoff.services.context import ServiceContext

log = logging.getLogger("handoff")

LIST_TOKEN_SECRET = "list-token"  # noqa: S105 - the name of the secret's row, not a secret


def keep_indexed(ctx: ServiceContext, record: HandoffRecord, *, if_absent: bool = False) -> None:
    """Write the handoff's index entry as ``record`` has it (never raises: a failure is logged). With
    ``if_absent``, only where the handoff has no entry yet: a new handoff's entry, or one healed from a
    read that a worker's later status may already have overtaken."""
    if ctx.index is None:
        return
    try:
        if if_absent:
            ctx.index.add(summary_of(record))
        else:
            ctx.index.put(summary_of(record))
    except Exception:
        log.exception("could not write the index entry of handoff %s", record.id)


def index_after_write(ctx: ServiceContext, handoff_id: str) -> None:
    """Write the index entry of a handoff whose status a state write just changed, from the copy the
    write left in this process (read again only when the process has no copy of its request)."""
    if ctx.index is None:
        return
    try:
        record = ctx.store.get(handoff_id, fresh=False)
    except Exception:
        log.exception("could not read handoff %s to index it", handoff_id)
        return
    if record is not None:
        keep_indexed(ctx, record)


class Listing:
    """``GET /api/handoffs`` and the MCP tool ``handoff_list``."""

    def __init__(self, ctx: ServiceContext) -> None:
        self.ctx = ctx
        self._key: bytes | None = None

    def _token_key(self) -> bytes:
        """The key continuation tokens are signed with (the broker's own secret, read once)."""
        if self._key is None:
            self._key = self.ctx.store.secret(LIST_TOKEN_SECRET)
        return self._key

    def list(self, query: ListQuery, caller: Caller) -> HandoffList:
        """One page of the handoffs ``caller`` may list, newest first, filtered by ``query``."""
        ctx = self.ctx
        index = ctx.index
        if index is None:
            raise ServiceUnavailable("the handoff index is not configured")
        cursor = (
            decode_cursor(query.continuation_token, self._token_key())
            if query.continuation_token
            else start_cursor(query, ctx.clock(), timedelta(seconds=ctx.settings.clock_skew_seconds))
        )
        if query.since is not None:  # sent again with a token: it wins over the token's
            cursor = replace(cursor, floor=utc_day(query.since), until=since_bound(query.since))
        identity = ctx.authorizer.identity(caller)
        agents = None if identity.operator or identity.agents is None else identity.agents
        if agents is not None and not agents:
            return HandoffList(items=[])
        where = IndexFilter(
            status=query.status,
            source=self._agent_key(query.source),
            target=self._agent_key(query.target),
            alert_rule=query.alert_rule.lower() if query.alert_rule else None,
            agents=None if agents is None else frozenset(name.lower() for name in agents),
        )
        until = cursor.until
        items: list[HandoffSummary] = []
        day, after = cursor.day, cursor.after
        for _ in range(DAYS_PER_PAGE):
            if day < cursor.floor:
                return HandoffList(items=items)
            rows = index.read_day(day, where, query.top - len(items), after, until)
            items.extend(row.summary for row in rows)
            if len(items) >= query.top:
                last = replace(cursor, day=day, after=rows[-1].row_key)
                return HandoffList(items=items, continuation_token=encode_cursor(last, self._token_key()))
            day, after = day - timedelta(days=1), None
        if day < cursor.floor:
            return HandoffList(items=items)
        # The walk read as many days as one request may: the token carries on from the next one.
        rest = replace(cursor, day=day, after=None)
        return HandoffList(items=items, continuation_token=encode_cursor(rest, self._token_key()))

    def _agent_key(self, name: str | None) -> str | None:
        """The lowercased registered name ``name`` stands for (as given when no agent has it)."""
        if name is None:
            return None
        agent = self.ctx.registry.find(name)
        return (agent.name if agent else name).lower()
