"""Which reader serves which backend ``type`` when the broker polls records for people's entries (the
fallback of webhooks). Used by the composition root only; the use case reaches readers through
:class:`handoff.ports.EntryReaders`."""

from __future__ import annotations

from datetime import datetime

from handoff.adapters.github import GitHubReader
from handoff.adapters.jira import JiraReader
from handoff.adapters.pagerduty import PagerDutyReader
from handoff.adapters.servicenow import ServiceNowReader
from handoff.adapters.vendors import WriterContext
from handoff.domain.shared_memory.config import Backend
from handoff.domain.shared_memory.human_entries import HumanEntry


class VendorReaders:
    """Implements :class:`handoff.ports.EntryReaders` over the vendors' REST APIs (the writers' HTTP
    client, credentials and rate-limit reading)."""

    def __init__(self, ctx: WriterContext) -> None:
        self.ctx = ctx

    def entries_since(self, backend: Backend, destination: str, since: datetime) -> list[HumanEntry]:
        """People's entries (and the broker's own) on one record since ``since``."""
        if backend.type == "github":
            return GitHubReader(backend, self.ctx).entries_since(destination, since)
        if backend.type == "pagerduty":
            return PagerDutyReader(backend, self.ctx).entries_since(destination, since)
        if backend.type == "jira":
            return JiraReader(backend, self.ctx).entries_since(destination, since)
        return ServiceNowReader(backend, self.ctx).entries_since(destination, since)
