"""Which writer serves which backend ``type``: adding a backend is one module plus an entry here."""

from __future__ import annotations

from typing import Any

from handoff.adapters.vendors import WriterContext
from handoff.ports import Writer


def make_writer(backend: Any, ctx: WriterContext) -> Writer:
    """The writer for a configured backend."""
    if backend.type == "github":
        from handoff.adapters.github import GitHubWriter

        return GitHubWriter(backend, ctx)
    if backend.type == "pagerduty":
        from handoff.adapters.pagerduty import PagerDutyWriter

        return PagerDutyWriter(backend, ctx)
    if backend.type == "servicenow":
        from handoff.adapters.servicenow import ServiceNowWriter

        return ServiceNowWriter(backend, ctx)
    if backend.type == "jira":
        from handoff.adapters.jira import JiraWriter

        return JiraWriter(backend, ctx)
    raise ValueError(f"no writer for backend type {backend.type!r}")
